using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// A 200 MB layer in the cache, asked for as a manifest (a client's mistake, or someone probing): by six clients at
/// once, and twenty times over in one image check. None of it is a manifest, so each answer is an error, and the
/// real program's memory does not take in the layer: it is never read as a manifest, and the upstream is not
/// asked for it as one either.
/// </summary>
public sealed class LayerAsManifestTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long LayerSize = 200L << 20;
    private const long GrowthBound = 64L << 20;
    private static readonly TimeSpan CheckBound = TimeSpan.FromSeconds(5);
    private readonly TempDirectory _work = new("layer-manifest");
    private TestRegistry _registry = null!;

    public async Task InitializeAsync() => _registry = await TestRegistry.StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    [Fact]
    public async Task LayerDigestAskedForAsAManifest_IsNeverAManifest_AndMemoryDoesNotGrowByTheLayer()
    {
        var image = await OciImageFactory.PushLargeBlobImageAsync(_registry, "big/layer", "1", "layer-as-manifest", LayerSize);
        var layer = image.Layers.Single();
        await using var mirror = await FaultSupport.StartProgramAsync(_work, _work.Combine("cache"), "docker.io", _registry.BaseUri, new Dictionary<string, string>());

        using (var response = await mirror.Client.GetAsync($"/v2/{image.Repository}/blobs/{layer.Digest}", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            await body.CopyToAsync(Stream.Null);
        }

        Assert.Equal(layer.Size, new FileInfo(FaultSupport.BlobFile(_work.Combine("cache"), layer.Digest)).Length);
        var before = FaultSupport.ResidentBytes(mirror.Id);

        // Six clients at once ask for the layer as a manifest, under its own repository and others.
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
        {
            var repository = i % 2 == 0 ? image.Repository : $"any/repo{i}";
            using var response = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{repository}/manifests/{layer.Digest}");
            return (response.StatusCode, Code: await FaultSupport.ErrorCodeAsync(response));
        }));
        foreach (var (status, code) in answers)
        {
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.Equal("MANIFEST_UNKNOWN", code);
        }

        // Content larger than any manifest can be is not one, wherever it is asked for: the upstream is not asked
        // to read 200 MB as a manifest (distribution answers that with a 500), so it is not marked down for it.
        Assert.Equal(0, await _registry.CountRequestsAsync("GET", "/manifests/" + layer.Digest));

        // One image check with twenty references to it.
        var references = Enumerable.Range(0, 20).Select(i => $"docker.io/any/image{i}@{layer.Digest}").ToArray();
        var stopwatch = Stopwatch.StartNew();
        using (var check = await mirror.Client.PostAsync("/status/images",
                   new StringContent(JsonSerializer.Serialize(new { images = references, platforms = "linux/amd64" }), Encoding.UTF8, "application/json")))
        {
            var elapsed = stopwatch.Elapsed;
            Assert.Equal(HttpStatusCode.OK, check.StatusCode);
            using var json = JsonDocument.Parse(await check.Content.ReadAsByteArrayAsync());
            var results = json.RootElement.GetProperty("images").EnumerateArray().ToArray();
            Assert.Equal(20, results.Length);
            Assert.All(results, r => Assert.Equal("missing", r.GetProperty("status").GetString()));
            output.WriteLine($"image check of 20 references to the layer: {elapsed.TotalMilliseconds:F0} ms");
            Assert.True(elapsed < CheckBound, $"the check took {elapsed.TotalMilliseconds:F0} ms");
        }

        var after = FaultSupport.ResidentBytes(mirror.Id);
        output.WriteLine($"RSS before {before >> 20} MiB, after {after >> 20} MiB: growth {(after - before) / (1024.0 * 1024):F1} MiB for a {LayerSize >> 20} MiB layer");
        Assert.True(after - before < GrowthBound, $"RSS grew by {(after - before) >> 20} MiB (from {before >> 20} MiB to {after >> 20} MiB)");

        // The upstream still serves everyone else, and the layer itself is untouched, still served as the blob it is.
        Assert.Equal("healthy", await FaultSupport.UpstreamStateAsync(mirror.Client));
        using (var tag = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{image.Repository}/manifests/{image.Tag}"))
        {
            Assert.Equal(HttpStatusCode.OK, tag.StatusCode);
            Assert.Equal(image.ManifestBytes, await tag.Content.ReadAsByteArrayAsync());
        }

        using var head = await mirror.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v2/{image.Repository}/blobs/{layer.Digest}"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(layer.Size, head.Content.Headers.ContentLength);
    }
}
