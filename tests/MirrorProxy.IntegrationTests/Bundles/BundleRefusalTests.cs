using System.Formats.Tar;
using System.Security.Cryptography;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>
/// Every way a bundle can be damaged or forged is refused with a message that says what is wrong, and the island's
/// cache is left exactly as it was: no blob, manifest, tag, pin or staging file.
/// </summary>
[Collection(BundleCollection.Name)]
public sealed class BundleRefusalTests(BundleFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("bundle-refused");

    public void Dispose() => _work.Dispose();

    [Theory]
    [InlineData("blob", "does not hash to its signed sha256")]
    [InlineData("manifest", "does not verify with any trusted key")]
    [InlineData("signature", "does not verify with any trusted key")]
    [InlineData("extra-file", "is not listed in the signed manifest")]
    [InlineData("path-traversal", "points outside the bundle")]
    [InlineData("symlink", "is a link")]
    [InlineData("truncated-tar", "truncated")]
    [InlineData("truncated-zstd", "truncated")]
    [InlineData("missing-file", "ends before 1 of its")]
    [InlineData("wrong-key", "does not verify with any trusted key")]
    [InlineData("no-key", "no trusted key was given")]
    public async Task DamagedOrForgedBundle_IsRefusedWithAClearMessage_AndNothingIsImported(string damage, string expected)
    {
        var bundle = await DamagedBundleAsync(damage);
        var trust = damage switch
        {
            "wrong-key" => new[] { "--trust", fixture.OtherPublicKey },
            "no-key" => [],
            _ => ["--trust", fixture.SigningPublicKey],
        };

        var cache = _work.Combine("island");
        await using (var island = await BundleFixture.StartIslandAsync(cache))
        {
            var (exit, output) = await BundleFixture.CliAsync(["bundle", "import", "--server", island.BaseUri.ToString(), .. trust, bundle]);
            Assert.True(exit == 1, output);
            Assert.Contains("REFUSED", output, StringComparison.Ordinal);
            Assert.Contains(expected, output, StringComparison.Ordinal);
            Assert.Contains("Nothing was imported", output, StringComparison.Ordinal);

            using var tag = await island.Client.GetAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io");
            Assert.False(tag.IsSuccessStatusCode);

            // verify says the same, offline.
            if (damage != "no-key")
            {
                (exit, output) = await BundleFixture.CliAsync(["bundle", "verify", .. trust, bundle]);
                Assert.True(exit == 1, output);
                Assert.Contains(expected, output, StringComparison.Ordinal);
            }
        }

        AssertNothingImported(cache);
        Assert.False(File.Exists(_work.Combine("escaped")));
    }

    [Fact]
    public async Task UnsignedBundle_IsTakenOnlyWithAllowUnsigned_AndStillHashChecked()
    {
        var bundle = _work.Combine("unsigned");
        BundleFixture.CopyDirectory(fixture.FullDirectory, bundle);
        File.Delete(Path.Combine(bundle, "mirrorproxy-bundle.json.sig"));

        var cache = _work.Combine("island");
        await using var island = await BundleFixture.StartIslandAsync(cache);
        var (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, bundle);
        Assert.Equal(1, exit);
        Assert.Contains("has no signature", output, StringComparison.Ordinal);
        AssertNothingImported(cache);

        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--allow-unsigned", bundle);
        Assert.True(exit == 0, output);
        Assert.Contains("signature not checked", output, StringComparison.Ordinal);
        Assert.Equal(fixture.MultiArch.ManifestBytes, await island.Client.GetByteArrayAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io"));
    }

    [Fact]
    public async Task UsageErrors_ExitTwo()
    {
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "import", "--server", "http://127.0.0.1:1", "--trust", "/nonexistent.pub", fixture.FullDirectory)).ExitCode);
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "import", "--server", "http://127.0.0.1:1", "--trust", fixture.SigningKey, fixture.FullDirectory)).ExitCode);
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "import", "--server", "http://127.0.0.1:1", "--trust", fixture.SigningPublicKey, fixture.FullDirectory)).ExitCode);
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--sign-key", fixture.SigningKey, "--output", _work.Combine("dir"), "--split-size", "4GiB")).ExitCode);
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--sign-key", fixture.SigningPublicKey, "--output", _work.Combine("x.tar"))).ExitCode);
        Assert.Equal(2, (await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--sign-key", fixture.SigningKey, "--output", fixture.FullDirectory)).ExitCode);

        // The real program: a command line that does not parse is a usage error too.
        var program = Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } native ? (native, Array.Empty<string>()) : ("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll")]);
        var unparsed = await Infrastructure.ProcessRunner.RunAsync(program.Item1, [.. program.Item2, "bundle", "verify"], TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(2, unparsed.ExitCode);

        var missing = _work.Combine("missing.txt");
        await File.WriteAllTextAsync(missing, "docker.io/team/absent:1\n");
        var (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", missing,
            "--sign-key", fixture.SigningKey, "--output", _work.Combine("absent"));
        Assert.Equal(1, exit);
        Assert.Contains("docker.io/team/absent:1", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_work.Combine("absent")));
    }

    private async Task<string> DamagedBundleAsync(string damage)
    {
        var directory = _work.Combine("bundle");
        var largeLayer = fixture.MultiArch.GetManifest(Infrastructure.OciPlatform.LinuxAmd64).Layers[2].Digest["sha256:".Length..];
        switch (damage)
        {
            case "truncated-tar":
            {
                var truncated = _work.Combine("truncated.tar");
                var bytes = await File.ReadAllBytesAsync(fixture.FullTar);
                await File.WriteAllBytesAsync(truncated, bytes[..(int)(bytes.Length * 0.6)]);
                return truncated;
            }

            case "truncated-zstd":
            {
                var archive = _work.Combine("whole.tar.zst");
                var (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
                    "--platform", "all", "--sign-key", fixture.SigningKey, "--output", archive);
                Assert.True(exit == 0, output);
                var truncated = _work.Combine("truncated.tar.zst");
                var bytes = await File.ReadAllBytesAsync(archive);
                await File.WriteAllBytesAsync(truncated, bytes[..(int)(bytes.Length * 0.6)]);
                return truncated;
            }

            case "path-traversal":
            {
                // The signed manifest and signature, then an entry that climbs out of the bundle.
                var evil = _work.Combine("bundle", "evil.tar");
                Directory.CreateDirectory(Path.GetDirectoryName(evil)!);
                await using (var tar = new TarWriter(File.Create(evil), TarEntryFormat.Pax))
                {
                    foreach (var name in new[] { "mirrorproxy-bundle.json", "mirrorproxy-bundle.json.sig", "oci-layout" })
                    {
                        await tar.WriteEntryAsync(Path.Combine(fixture.FullDirectory, name), name);
                    }

                    await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "../escaped") { DataStream = new MemoryStream("pwned"u8.ToArray()) });
                }

                return evil;
            }
        }

        BundleFixture.CopyDirectory(fixture.FullDirectory, directory);
        var blobs = Path.Combine(directory, "blobs", "sha256");
        switch (damage)
        {
            case "blob":
            {
                var path = Path.Combine(blobs, largeLayer);
                var bytes = await File.ReadAllBytesAsync(path);
                bytes[bytes.Length / 2] ^= 0x01;
                await File.WriteAllBytesAsync(path, bytes);
                break;
            }

            case "manifest":
            {
                var path = Path.Combine(directory, "mirrorproxy-bundle.json");
                var text = await File.ReadAllTextAsync(path);
                await File.WriteAllTextAsync(path, text.Replace("\"sequence\": ", "\"sequence\": 9", StringComparison.Ordinal));
                break;
            }

            case "signature":
            {
                // A well-formed signature by the trusted key, over other bytes.
                var other = _work.Combine("other.json");
                await File.WriteAllTextAsync(other, "{}");
                var der = _work.Combine("other.sig");
                await BundleFixture.OpensslAsync("dgst", "-sha256", "-sign", fixture.SigningKey, "-out", der, other);
                await File.WriteAllTextAsync(Path.Combine(directory, "mirrorproxy-bundle.json.sig"), Convert.ToBase64String(await File.ReadAllBytesAsync(der)));
                break;
            }

            case "extra-file":
            {
                var extra = "not part of the bundle"u8.ToArray();
                await File.WriteAllBytesAsync(Path.Combine(blobs, Convert.ToHexStringLower(SHA256.HashData(extra))), extra);
                break;
            }

            case "symlink":
            {
                var path = Path.Combine(blobs, largeLayer);
                var elsewhere = _work.Combine("elsewhere");
                File.Move(path, elsewhere);
                File.CreateSymbolicLink(path, elsewhere);
                break;
            }

            case "missing-file":
                File.Delete(Path.Combine(blobs, largeLayer));
                break;
        }

        return directory;
    }

    internal static void AssertNothingImported(string cache)
    {
        foreach (var directory in new[] { "blobs", "tags", "tmp" })
        {
            var path = Path.Combine(cache, directory);
            var files = Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Take(3).ToList() : [];
            Assert.True(files.Count == 0, $"{directory}/ holds {string.Join(", ", files)}");
        }

        var pins = Path.Combine(cache, "pins");
        Assert.True(!Directory.Exists(pins) || !Directory.EnumerateFiles(pins).Any());
        Assert.False(Directory.Exists(Path.Combine(cache, "state", "bundles", "sources")));
    }
}
