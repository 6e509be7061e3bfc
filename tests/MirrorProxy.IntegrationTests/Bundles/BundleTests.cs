using System.Security.Cryptography;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>
/// Bundles end to end with real parts: exported from a mirror in front of a real registry, read by skopeo and
/// containerd, the signature checked by openssl, imported into an offline mirror that containerd then pulls from.
/// </summary>
[Collection(BundleCollection.Name)]
public sealed class BundleTests(BundleFixture fixture, ITestOutputHelper log) : IDisposable
{
    private readonly TempDirectory _work = new("bundle-test");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task FullBundle_ImportedIntoAnOfflineMirror_ContainerdPullsBothPlatforms()
    {
        var island = _work.Combine("island");
        await using var mirror = await MirrorProcess.StartAsync(island, ["--offline", "--upstream", "docker.io=http://127.0.0.1:1"]);

        var (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", mirror.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fixture.FullDirectory);
        log.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("imported full bundle", output, StringComparison.Ordinal);
        Assert.Contains("2 images", output, StringComparison.Ordinal);
        Assert.Contains("pinned as 'bundle'", output, StringComparison.Ordinal);

        await using var containerd = await ContainerdDaemon.StartAsync();
        using var hosts = ShortTempDirectory.Create("hosts-");
        ContainerdDaemon.WriteHostsToml(hosts.Path, "docker.io", mirror.BaseUri, mirrorOnly: true);
        foreach (var platform in new[] { OciPlatform.LinuxAmd64, OciPlatform.LinuxArm64 })
        {
            var pull = await containerd.PullAsync(fixture.MultiArchReference, hosts.Path, $"{platform.Os}/{platform.Architecture}");
            log.WriteLine(pull.Describe());
            pull.EnsureSuccess();
            var content = (await containerd.ListContentAsync()).Select(c => c.Digest).ToHashSet();
            Assert.All(fixture.MultiArch.GetManifest(platform).Blobs, b => Assert.Contains(b.Digest, content));
            var layer = fixture.MultiArch.GetManifest(platform).Layers[2];
            Assert.Equal(layer.Content, await containerd.GetContentAsync(layer.Digest));
        }

        (await containerd.PullAsync(fixture.DockerReference, hosts.Path, "linux/amd64")).EnsureSuccess();
        Assert.Contains(await containerd.ListImagesAsync(), i => i.Reference == fixture.DockerReference && i.Digest == fixture.Docker.Digest);

        // The pin set holds every digest of both images.
        var pins = JsonDocument.Parse(await mirror.Client.GetStringAsync("/admin/pins/bundle")).RootElement;
        var pinned = pins.GetProperty("digests").EnumerateArray().Select(d => d.GetString()).ToHashSet();
        Assert.All(fixture.MultiArch.Blobs.Select(b => b.Digest).Concat(fixture.Docker.Blobs.Select(b => b.Digest)).Append(fixture.MultiArch.Digest), d => Assert.Contains(d, pinned));
    }

    [Fact]
    public async Task SelectedBundle_FromSelectAndRules_HoldsWhatTheySelect_AndSaysWhatSelectedIt()
    {
        // An older release beside 1.0 that the rules leave out.
        var old = await OciImageFactory.PushDockerImageAsync(fixture.Registry, fixture.MultiArch.Repository, "0.9", "bundle-select-old");
        var rules = _work.Combine("rules.yaml");
        await File.WriteAllTextAsync(rules, $"rules:\n  - repository: docker.io/{fixture.MultiArch.Repository}\n    semver: \">=1\"\n");
        var output = _work.Combine("selected");
        var (exit, text) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--select", $"docker.io/{fixture.Docker.Repository}:1.*",
            "--rules", rules, "--platform", "linux/amd64", "--sign-key", fixture.SigningKey, "--output", output);
        log.WriteLine(text);
        Assert.True(exit == 0, text);
        Assert.Contains("selection: 2 references from 2 rules", text, StringComparison.Ordinal);
        Assert.Contains($"selected by --select docker.io/{fixture.Docker.Repository}:1.*", text, StringComparison.Ordinal);
        Assert.Matches($@"selected by --rules {System.Text.RegularExpressions.Regex.Escape(rules)} sha256:[0-9a-f]{{64}}", text);

        var manifest = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(output, "mirrorproxy-bundle.json"))).RootElement;
        var references = manifest.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("reference").GetString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal([fixture.DockerReference, fixture.MultiArchReference], references);
        Assert.DoesNotContain(manifest.GetProperty("images").EnumerateArray(), i => i.GetProperty("digest").GetString() == old.Digest);

        // The signed manifest records what selected them: the sources and the rules as resolved.
        var selection = manifest.GetProperty("selection");
        Assert.Contains($"--select docker.io/{fixture.Docker.Repository}:1.*", selection.GetProperty("sources").EnumerateArray().Select(s => s.GetString()));
        Assert.Contains(selection.GetProperty("rules").EnumerateArray(),
            r => r.GetProperty("repository").GetString() == $"docker.io/{fixture.MultiArch.Repository}" && r.GetProperty("semver").GetString() == ">=1");

        // Images only: the first format version, which mirrors that know nothing of charts read.
        Assert.Equal(1, manifest.GetProperty("formatVersion").GetInt32());
        Assert.False(manifest.TryGetProperty("charts", out _));
    }

    [Fact]
    public async Task FullBundle_IsAnOciLayoutThatSkopeoReads_AndItsSignatureVerifiesWithOpenssl()
    {
        var signature = _work.Combine("sig.der");
        await File.WriteAllBytesAsync(signature, Convert.FromBase64String(await File.ReadAllTextAsync(Path.Combine(fixture.FullDirectory, "mirrorproxy-bundle.json.sig"))));
        var verified = await BundleFixture.OpensslAsync("dgst", "-sha256", "-verify", fixture.SigningPublicKey, "-signature", signature, Path.Combine(fixture.FullDirectory, "mirrorproxy-bundle.json"));
        Assert.Contains("Verified OK", verified.StandardOutput, StringComparison.Ordinal);

        var wrongKey = await ProcessRunner.RunAsync("openssl", ["dgst", "-sha256", "-verify", fixture.OtherPublicKey, "-signature", signature, Path.Combine(fixture.FullDirectory, "mirrorproxy-bundle.json")], TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.False(wrongKey.Succeeded);

        // skopeo reads every platform of the multi-arch OCI image straight from the layout. (skopeo 1.9 looks up
        // only OCI-typed index.json entries, so the Docker schema 2 image is for containerd, which reads both.)
        var copied = _work.Combine("copied");
        (await Skopeo.CopyAsync($"oci:{fixture.FullDirectory}:{fixture.MultiArchReference}", $"oci:{copied}:app", all: true)).EnsureSuccess();
        foreach (var blob in fixture.MultiArch.Blobs)
        {
            var path = Path.Combine(copied, "blobs", "sha256", blob.Digest["sha256:".Length..]);
            Assert.True(File.Exists(path), $"skopeo did not copy {blob.Digest}");
            Assert.Equal(blob.Content, await File.ReadAllBytesAsync(path));
        }

        var index = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(fixture.FullDirectory, "index.json"))).RootElement;
        var entry = index.GetProperty("manifests").EnumerateArray().Single(m => m.GetProperty("digest").GetString() == fixture.MultiArch.Digest);
        Assert.Equal(fixture.MultiArchReference, entry.GetProperty("annotations").GetProperty("io.containerd.image.name").GetString());
        Assert.Equal(fixture.MultiArchReference, entry.GetProperty("annotations").GetProperty("org.opencontainers.image.ref.name").GetString());
    }

    [Fact]
    public async Task FullTar_CtrImportsIt_AndVerifyAcceptsTheTarAndTheDirectory()
    {
        await using var containerd = await ContainerdDaemon.StartAsync();
        var imported = await containerd.RunCtrAsync(["images", "import", "--all-platforms", "--no-unpack", fixture.FullTar], TimeSpan.FromSeconds(120));
        log.WriteLine(imported.Describe());
        imported.EnsureSuccess();
        var images = await containerd.ListImagesAsync();
        Assert.Contains(images, i => i.Reference == fixture.MultiArchReference && i.Digest == fixture.MultiArch.Digest);
        Assert.Contains(images, i => i.Reference == fixture.DockerReference && i.Digest == fixture.Docker.Digest);
        var content = (await containerd.ListContentAsync()).Select(c => c.Digest).ToHashSet();
        Assert.All(fixture.MultiArch.Blobs, b => Assert.Contains(b.Digest, content));

        foreach (var bundle in new[] { fixture.FullTar, fixture.FullDirectory })
        {
            var (exit, output) = await BundleFixture.CliAsync("bundle", "verify", "--trust", fixture.OtherPublicKey, "--trust", fixture.SigningPublicKey, bundle);
            Assert.True(exit == 0, output);
            Assert.Contains("verified: full bundle", output, StringComparison.Ordinal);
            Assert.Contains(fixture.MultiArchReference, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ZstdAndSplitArchives_VerifyAndImport_AndEveryPartIsBelowTheSplitSize()
    {
        var archive = _work.Combine("split.tar.zst");
        var (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--platform", "all", "--sign-key", fixture.SigningKey, "--output", archive, "--split-size", "1MiB");
        Assert.True(exit == 0, output);
        var parts = Directory.GetFiles(_work.Path, "split.tar.zst.*").Order(StringComparer.Ordinal).ToList();
        Assert.True(parts.Count >= 3, string.Join(", ", parts));
        Assert.All(parts, p => Assert.True(new FileInfo(p).Length < 1024 * 1024, p));

        // zstd itself reads the parts put back together.
        var whole = _work.Combine("whole.tar.zst");
        await using (var target = File.Create(whole))
        {
            foreach (var part in parts)
            {
                await using var source = File.OpenRead(part);
                await source.CopyToAsync(target);
            }
        }

        (await ProcessRunner.RunAsync("zstd", ["-t", whole], TimeSpan.FromSeconds(60), CancellationToken.None)).EnsureSuccess();

        (exit, output) = await BundleFixture.CliAsync("bundle", "verify", "--trust", fixture.SigningPublicKey, parts[0]);
        Assert.True(exit == 0, output);

        await using var island = await BundleFixture.StartIslandAsync(_work.Combine("island"));
        (exit, output) = await BundleFixture.CliAsync(["bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, .. parts]);
        Assert.True(exit == 0, output);
        Assert.Equal(fixture.MultiArch.ManifestBytes, await island.Client.GetByteArrayAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io"));
        var large = fixture.MultiArch.GetManifest(OciPlatform.LinuxArm64).Layers[2];
        Assert.Equal(large.Content, await island.Client.GetByteArrayAsync($"/v2/{fixture.MultiArch.Repository}/blobs/{large.Digest}?ns=docker.io"));
    }

    [Fact]
    public async Task Keygen_WritesAPairThatSignsABundleOpensslVerifies_AndNeverOverwrites()
    {
        var name = _work.Combine("made");
        var (exit, output) = await BundleFixture.CliAsync("bundle", "keygen", "--output", name);
        Assert.True(exit == 0, output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(name + ".pem"));
        (await BundleFixture.OpensslAsync("pkey", "-in", name + ".pem", "-noout", "-check")).EnsureSuccess();

        var bundle = _work.Combine("b");
        (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--platform", "linux/amd64", "--sign-key", name + ".pem", "--output", bundle);
        Assert.True(exit == 0, output);
        var signature = _work.Combine("sig.der");
        await File.WriteAllBytesAsync(signature, Convert.FromBase64String(await File.ReadAllTextAsync(Path.Combine(bundle, "mirrorproxy-bundle.json.sig"))));
        (await BundleFixture.OpensslAsync("dgst", "-sha256", "-verify", name + ".pub", "-signature", signature, Path.Combine(bundle, "mirrorproxy-bundle.json"))).EnsureSuccess();

        // linux/amd64 only: the arm64 manifest and its own layers stay out.
        var arm64 = fixture.MultiArch.GetManifest(OciPlatform.LinuxArm64);
        Assert.False(File.Exists(Path.Combine(bundle, "blobs", "sha256", arm64.Layers[2].Digest["sha256:".Length..])));
        Assert.False(File.Exists(Path.Combine(bundle, "blobs", "sha256", arm64.Digest["sha256:".Length..])));

        var before = SHA256.HashData(await File.ReadAllBytesAsync(name + ".pem"));
        (exit, output) = await BundleFixture.CliAsync("bundle", "keygen", "--output", name);
        Assert.Equal(1, exit);
        Assert.Contains("already exists", output, StringComparison.Ordinal);
        Assert.Equal(before, SHA256.HashData(await File.ReadAllBytesAsync(name + ".pem")));
    }

    [Fact]
    public async Task Signature_VerifiesWithTheJsSigstoreImplementation_Offline()
    {
        // The JS Sigstore verifier (npm @sigstore/verify), given the public key and no transparency log, as
        // cosign verify-blob --key --insecure-ignore-tlog checks a blob: an independent second implementation.
        var tool = _work.Combine("sigstore");
        Directory.CreateDirectory(tool);
        foreach (var file in new[] { "package.json", "package-lock.json", "verify-blob.js" })
        {
            File.Copy(Path.Combine(RepositoryRoot.Path, "tests", "MirrorProxy.IntegrationTests", "Bundles", "sigstore", file), Path.Combine(tool, file));
        }

        (await ProcessRunner.RunAsync("npm", ["ci", "--no-audit", "--no-fund"], TimeSpan.FromMinutes(3), new ProcessRunOptions { WorkingDirectory = tool }, CancellationToken.None)).EnsureSuccess();
        var manifest = Path.Combine(fixture.FullDirectory, "mirrorproxy-bundle.json");
        var signature = Path.Combine(fixture.FullDirectory, "mirrorproxy-bundle.json.sig");
        var verified = await ProcessRunner.RunAsync("node", [Path.Combine(tool, "verify-blob.js"), fixture.SigningPublicKey, signature, manifest], TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.True(verified.Succeeded, verified.Describe());
        Assert.Contains("Verified OK", verified.StandardOutput, StringComparison.Ordinal);

        var wrongKey = await ProcessRunner.RunAsync("node", [Path.Combine(tool, "verify-blob.js"), fixture.OtherPublicKey, signature, manifest], TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.False(wrongKey.Succeeded, wrongKey.Describe());

        var altered = _work.Combine("altered.json");
        await File.WriteAllTextAsync(altered, (await File.ReadAllTextAsync(manifest)).Replace("\"full\"", "\"delta\"", StringComparison.Ordinal));
        var tampered = await ProcessRunner.RunAsync("node", [Path.Combine(tool, "verify-blob.js"), fixture.SigningPublicKey, signature, altered], TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.False(tampered.Succeeded, tampered.Describe());
    }
}
