using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>
/// Import speed against the floor of reading and hashing the same files: <c>sha256sum</c> over the bundle, in the
/// same run. Reported, not asserted (tests check correctness, not time); the import is checked byte for byte.
/// </summary>
[Collection(BundleCollection.Name)]
public sealed class BundleThroughputTests(BundleFixture fixture, ITestOutputHelper log) : IDisposable
{
    private const long LayerBytes = 128L * 1024 * 1024;

    private readonly TempDirectory _work = new("bundle-rate");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task Import_ReadsAndHashesAtTheRateOfSha256sum_AndTheIslandServesTheLayerIntact()
    {
        var image = await OciImageFactory.PushLargeBlobImageAsync(fixture.Registry, "rate/big", "1", "bundle-rate", LayerBytes);
        var list = _work.Combine("big.txt");
        await File.WriteAllTextAsync(list, $"docker.io/{image.Repository}:{image.Tag}\n");
        var bundle = _work.Combine("big");
        var (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", list,
            "--platform", "linux/amd64", "--sign-key", fixture.SigningKey, "--output", bundle);
        Assert.True(exit == 0, output);

        var files = Directory.EnumerateFiles(bundle, "*", SearchOption.AllDirectories).ToList();
        var bytes = files.Sum(f => new FileInfo(f).Length);
        var hashBefore = await Sha256sumAsync(files);

        // The real program as the island, in its own process, as an operator runs it.
        await using var island = await MirrorProcess.StartAsync(_work.Combine("island"), ["--offline", "--upstream", "docker.io=http://127.0.0.1:1"]);
        // A first, small import warms both processes up (JIT, connections): the rate measured is the steady one.
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fixture.FullTar);
        Assert.True(exit == 0, output);

        var clock = Stopwatch.StartNew();
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, bundle);
        var import = clock.Elapsed;
        Assert.True(exit == 0, output);
        var hashAfter = await Sha256sumAsync(files);
        var sha256sum = hashBefore < hashAfter ? hashBefore : hashAfter;

        var mib = bytes / (1024.0 * 1024);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bundle of {bytes} bytes: import {import.TotalSeconds:0.00} s ({mib / import.TotalSeconds:0} MiB/s), sha256sum {sha256sum.TotalSeconds:0.00} s ({mib / sha256sum.TotalSeconds:0} MiB/s); import/sha256sum rate ratio {sha256sum.TotalSeconds / import.TotalSeconds:0.00}"));
        var zstd = _work.Combine("fixture.tar.zst");
        (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", fixture.Connected.BaseUri.ToString(), "--images", fixture.Images,
            "--platform", "all", "--sign-key", fixture.SigningKey, "--output", zstd);
        Assert.True(exit == 0, output);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bundle sizes for the two test images: directory {DirectorySize(fixture.FullDirectory)} bytes, tar {new FileInfo(fixture.FullTar).Length} bytes, tar.zst {new FileInfo(zstd).Length} bytes"));

        // The same bundle read by a second island itself, from the path (a disk it sees): no copy through HTTP.
        await using var reader = await MirrorProcess.StartAsync(_work.Combine("island-reads"), ["--offline", "--upstream", "docker.io=http://127.0.0.1:1"]);
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", reader.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, "--mirror-reads-path", fixture.FullTar);
        Assert.True(exit == 0, output);
        clock.Restart();
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", reader.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, "--mirror-reads-path", bundle);
        var direct = clock.Elapsed;
        Assert.True(exit == 0, output);
        Assert.Contains(", 0 already cached", output, StringComparison.Ordinal);
        sha256sum = await Sha256sumAsync(files) is var again && again < sha256sum ? again : sha256sum;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"the mirror reading the path itself: import {direct.TotalSeconds:0.00} s ({mib / direct.TotalSeconds:0} MiB/s); import/sha256sum rate ratio {sha256sum.TotalSeconds / direct.TotalSeconds:0.00}"));

        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", reader.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, "--mirror-reads-path", _work.Combine("absent"));
        Assert.Equal(1, exit);
        Assert.Contains($"the mirror cannot read the bundle at {_work.Combine("absent")}", output, StringComparison.Ordinal);

        var layer = image.Layers.Single();
        foreach (var mirror in new[] { island, reader })
        {
            using var response = await mirror.Client.GetAsync($"/v2/{image.Repository}/blobs/{layer.Digest}?ns=docker.io", HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            await using var body = await response.Content.ReadAsStreamAsync();
            Assert.Equal(layer.Digest, "sha256:" + Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));
        }
    }

    private static async Task<TimeSpan> Sha256sumAsync(IReadOnlyList<string> files)
    {
        var result = (await ProcessRunner.RunAsync("sha256sum", files, TimeSpan.FromMinutes(2), CancellationToken.None)).EnsureSuccess();
        Assert.Equal(files.Count, result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        return result.Duration;
    }

    private static long DirectorySize(string directory) => Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
}
