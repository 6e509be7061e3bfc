using System.CommandLine;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// <c>check</c> and <c>warm</c> as an operator meets them: a bare HOST:PORT, usage errors, a mirror whose CA is
/// not trusted, and images of registries the mirror does not serve (the mirror's own), with and without --strict.
/// </summary>
[Collection(PullThroughCollection.Name)]
public sealed class ClientCommandTests(PullThroughFixture fixture) : IDisposable
{
    private const string OwnImage = "localhost/mirrorproxy:0.1.0";
    private readonly TempDirectory _work = new("client-commands");

    public void Dispose() => _work.Dispose();

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.InvokeAsync(args, new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private string ImageList(params string[] images)
    {
        var file = _work.Combine($"images-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, string.Join('\n', images) + "\n");
        return file;
    }

    private string Busybox => $"docker.io/{fixture.DockerImage.Repository}:{fixture.DockerImage.Tag}";

    [Fact]
    public async Task Check_ServerWithoutScheme_IsTakenAsHttp()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));

        var (exit, output, error) = await RunAsync("check", "--server", mirror.HostPort, "--images", ImageList(Busybox), "--platform", "linux/amd64");

        // Reached the mirror: the image is reported (not cached yet), not a usage error.
        Assert.True(exit == 1, output + error);
        Assert.Contains($"MISSING: {Busybox}: tag {fixture.DockerImage.Tag} is not cached", output, StringComparison.Ordinal);
        Assert.Equal("", error);
    }

    [Theory]
    [InlineData(new[] { "check", "--server", "ftp://mirror:5000", "--images", "-" }, "--server: 'ftp://mirror:5000' is not an http:// or https:// URL")]
    [InlineData(new[] { "check", "--images", "-" }, "--server")]
    [InlineData(new[] { "warm", "--server", "mirror.internal", "--images", "-" }, "--server: 'mirror.internal'")]
    [InlineData(new[] { "check", "--server", "http://127.0.0.1:1", "--images", "-", "--no-such-flag" }, "--no-such-flag")]
    public async Task UsageError_IsOneLineAndExitCodeTwo(string[] args, string expected)
    {
        var (exit, output, error) = await RunAsync(args);

        Assert.Equal(2, exit);
        Assert.Equal("", output);
        var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"mirrorproxy {args[0]}: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("Usage:", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_MirrorWithAnUntrustedCa_SaysWhyAndHowToTrustIt_AndWorksWithCa()
    {
        using var ca = new TestCertificateAuthority("Ship CA", _work.Path);
        var (certificate, key, _) = ca.IssueServer("mirror");
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"), settings: new Dictionary<string, string?>
        {
            ["MirrorProxy:Tls:CertificateFile"] = certificate,
            ["MirrorProxy:Tls:KeyFile"] = key,
        });
        var server = $"https://127.0.0.1:{mirror.BaseUri.Port}";
        var images = ImageList(OwnImage);

        var (exit, output, error) = await RunAsync("check", "--server", server, "--images", images);

        Assert.True(exit == 2, output + error);
        Assert.DoesNotContain("see inner exception", error, StringComparison.OrdinalIgnoreCase);
        Assert.True(error.Contains("the certificate is not trusted (", StringComparison.Ordinal), error);
        Assert.Contains("--ca FILE", error, StringComparison.Ordinal);
        Assert.Contains("SSL_CERT_FILE", error, StringComparison.Ordinal);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        (exit, output, error) = await RunAsync("check", "--server", server, "--images", images, "--ca", ca.CertificateFile);
        Assert.True(exit == 0, output + error);

        // warm fails fast with the same explanation, before touching any image.
        (exit, output, error) = await RunAsync("warm", "--server", server, "--images", images, "--no-pin");
        Assert.True(exit == 2, output + error);
        Assert.True(error.Contains("the certificate is not trusted (", StringComparison.Ordinal), error);
        Assert.True(error.Contains("--ca FILE", StringComparison.Ordinal), error);
    }

    [Fact]
    public async Task WarmAndCheck_ImageOfAnUnservedRegistry_IsListedAsNotMirrored_AndFailsOnlyWithStrict()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));
        var images = ImageList(Busybox, OwnImage);

        var (exit, output, error) = await RunAsync("warm", "--server", mirror.BaseUri.ToString(), "--images", images, "--platform", "linux/amd64", "--pin-set", "cluster");

        Assert.True(exit == 0, output + error);
        Assert.Contains($"warmed {Busybox}", output, StringComparison.Ordinal);
        Assert.Contains("0 failed", output, StringComparison.Ordinal);
        Assert.Contains("1 not mirrored", output, StringComparison.Ordinal);
        Assert.Contains($"NOT MIRRORED: {OwnImage}: no upstream is configured for registry localhost", output, StringComparison.Ordinal);
        Assert.DoesNotContain("404", output, StringComparison.Ordinal);
        Assert.Contains("pinned as 'cluster'", output, StringComparison.Ordinal);

        (exit, output, error) = await RunAsync("warm", "--server", mirror.BaseUri.ToString(), "--images", images, "--platform", "linux/amd64", "--no-pin", "--strict");
        Assert.True(exit == 1, output + error);
        Assert.Contains("--strict counts them as failures", output, StringComparison.Ordinal);

        (exit, output, error) = await RunAsync("check", "--server", mirror.HostPort, "--images", images, "--platform", "linux/amd64");
        Assert.True(exit == 0, output + error);
        Assert.Contains($"OK {Busybox}", output, StringComparison.Ordinal);
        Assert.Contains($"NOT MIRRORED: {OwnImage}: no upstream is configured for registry localhost", output, StringComparison.Ordinal);
        Assert.EndsWith("2 images checked for linux/amd64: 1 complete, 0 missing, 0 invalid, 1 not mirrored", output.TrimEnd(), StringComparison.Ordinal);

        (exit, output, error) = await RunAsync("check", "--server", mirror.HostPort, "--images", images, "--platform", "linux/amd64", "--strict");
        Assert.True(exit == 1, output + error);
    }

    [Fact]
    public async Task Warm_ManifestTheUpstreamDoesNotHave_ReportsTheRegistryError()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));

        var (exit, output, error) = await RunAsync("warm", "--server", mirror.HostPort, "--images", ImageList("docker.io/never/pushed:1"), "--no-pin");

        Assert.True(exit == 1, output + error);
        Assert.Contains("FAILED docker.io/never/pushed:1: manifest: 404 Not Found: MANIFEST_UNKNOWN", output, StringComparison.Ordinal);
    }
}
