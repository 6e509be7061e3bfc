using System.Net;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure.Disks;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>
/// The island's cache disk (a 64 MiB tmpfs) fills up in the middle of an import, with half the bundle staged: the
/// mirror answers 507 saying the disk is full, removes what it staged and sets no tag, goes on answering, and once
/// there is room again the same bundle imports through the CLI and is served.
/// </summary>
[Collection(BundleCollection.Name)]
public sealed class BundleDiskFullTests(BundleFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("bundle-disk-full");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task CacheDiskFillsMidImport_Answers507_LeavesNothingStaged_ARerunCompletesOnceThereIsRoom()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using var disk = await TmpfsDisk.MountAsync(64L << 20, cts.Token);
        var cache = disk.Combine("cache");
        await using var island = await MirrorServer.StartAsync(cache, [("docker.io", new Uri("http://127.0.0.1:1"))], new Dictionary<string, string?>
        {
            ["MirrorProxy:Offline"] = "true",
            ["MirrorProxy:Cache:MinFreeDisk"] = "1MiB",
        });

        var tar = await File.ReadAllBytesAsync(fixture.FullTar, cts.Token);
        var stall = new TaskCompletionSource();
        using var body = new BundleCrashTests.StallingStream(tar, tar.Length / 2, stall.Task, thenTheRest: true);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/bundles/import?allowUnsigned=true") { Content = new StreamContent(body) };
        var sending = island.Client.SendAsync(request, cts.Token);
        await Eventually.TrueAsync(() => BundleCrashTests.StagedBytes(cache) > 0 && body.Stalled, TimeSpan.FromSeconds(30), "half the bundle is staged");

        var filled = await disk.FillAsync(cancellationToken: cts.Token);
        stall.SetResult();
        using (var response = await sending)
        {
            var text = await response.Content.ReadAsStringAsync(cts.Token);
            Assert.True(response.StatusCode == HttpStatusCode.InsufficientStorage, $"{(int)response.StatusCode}: {text}");
            using var json = JsonDocument.Parse(text);
            Assert.Equal("StorageFailed", json.RootElement.GetProperty("refusal").GetString());
            var message = json.RootElement.GetProperty("message").GetString();
            Assert.True(message?.Contains("the cache's disk is full", StringComparison.Ordinal) == true, message);
        }

        Assert.True(filled > 0);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(cache, "tmp")));
        BundleRefusalTests.AssertNothingImported(cache);
        using (var manifest = await island.Client.GetAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io", cts.Token))
        {
            Assert.False(manifest.IsSuccessStatusCode);
        }

        using (var ready = await island.Client.GetAsync("/readyz", cts.Token))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }

        disk.DeleteFill();
        var (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fixture.FullTar);
        Assert.True(exit == 0, output);
        await BundleCrashTests.AssertServedAsync(fixture, island.Client);
    }
}
