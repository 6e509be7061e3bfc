using System.CommandLine;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>
/// A real upstream (Debian's docker-registry) holding a multi-arch OCI image and a Docker schema 2 image, a
/// connected mirror in front of it, signing keys made by openssl (one PKCS#8, one SEC1), and a full bundle of both
/// images exported once as a directory and as a tar, for the tests to verify, import and tamper with (on copies).
/// </summary>
public sealed class BundleFixture : IAsyncLifetime
{
    private readonly TempDirectory _work = new("bundle");

    internal TestRegistry Registry { get; private set; } = null!;

    internal MirrorServer Connected { get; private set; } = null!;

    internal TestImage MultiArch { get; private set; } = null!;

    internal TestImage Docker { get; private set; } = null!;

    /// <summary><c>docker.io/team/app:1.0</c>: the multi-arch image as the bundle names it.</summary>
    internal string MultiArchReference => $"docker.io/{MultiArch.Repository}:{MultiArch.Tag}";

    internal string DockerReference => $"docker.io/{Docker.Repository}:{Docker.Tag}";

    /// <summary>PKCS#8 private key (openssl genpkey) and its public key.</summary>
    internal string SigningKey => _work.Combine("signing.pem");

    internal string SigningPublicKey => _work.Combine("signing.pub");

    /// <summary>Another pair, SEC1 (openssl ecparam -genkey): a key the islands do not trust.</summary>
    internal string OtherKey => _work.Combine("other.pem");

    internal string OtherPublicKey => _work.Combine("other.pub");

    internal string FullDirectory => _work.Combine("full");

    internal string FullTar => _work.Combine("full.tar");

    internal string Images => _work.Combine("images.txt");

    public async Task InitializeAsync()
    {
        Registry = await TestRegistry.StartAsync();
        MultiArch = await OciImageFactory.PushMultiArchImageAsync(Registry, "team/app", "1.0", "bundle-multi");
        Docker = await OciImageFactory.PushDockerImageAsync(Registry, "library/busybox", "1.36", "bundle-docker");
        Connected = await MirrorServer.StartAsync(_work.Combine("connected"), [("docker.io", Registry.BaseUri)]);

        await OpensslAsync("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", SigningKey);
        await OpensslAsync("pkey", "-in", SigningKey, "-pubout", "-out", SigningPublicKey);
        await OpensslAsync("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", OtherKey);
        await OpensslAsync("ec", "-in", OtherKey, "-pubout", "-out", OtherPublicKey);

        // Written as a user would: short names, the registry implied for one of them.
        await File.WriteAllTextAsync(Images, $"{MultiArch.Repository}:{MultiArch.Tag}\ndocker.io/{Docker.Repository.Replace("library/", "", StringComparison.Ordinal)}:{Docker.Tag}\n");
        foreach (var output in new[] { FullDirectory, FullTar })
        {
            var (exit, text) = await CliAsync("bundle", "export", "--server", Connected.BaseUri.ToString(), "--images", Images,
                "--platform", "linux/amd64,linux/arm64", "--sign-key", SigningKey, "--output", output);
            if (exit != 0)
            {
                throw new InvalidOperationException($"export to {output} failed ({exit}): {text}");
            }
        }
    }

    internal string Combine(params string[] parts) => _work.Combine(parts);

    /// <summary>Runs the program's CLI in process; returns the exit code and everything it wrote.</summary>
    internal static async Task<(int ExitCode, string Output)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output + error.ToString());
    }

    internal static async Task<ProcessResult> OpensslAsync(params string[] args) =>
        (await ProcessRunner.RunAsync("openssl", args, TimeSpan.FromSeconds(30), CancellationToken.None)).EnsureSuccess();

    /// <summary>An island: an empty mirror that never dials out.</summary>
    internal static Task<MirrorServer> StartIslandAsync(string cache) =>
        MirrorServer.StartAsync(cache, [("docker.io", new Uri("http://127.0.0.1:1"))], new Dictionary<string, string?> { ["MirrorProxy:Offline"] = "true" });

    /// <summary>Copies a bundle directory (to tamper with the copy).</summary>
    internal static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    public async Task DisposeAsync()
    {
        await Connected.DisposeAsync();
        await Registry.DisposeAsync();
        _work.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class BundleCollection : ICollectionFixture<BundleFixture>
{
    public const string Name = "bundles";
}
