using System.Net;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>/metrics values after known traffic, and /readyz while the upstream is hung.</summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricsAndReadinessTests : IAsyncLifetime
{
    private readonly TempDirectory _work = new("metrics");
    private TestRegistry _registry = null!;
    private FaultyUpstream _slow = null!;
    private TestImage _image = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        _image = await OciImageFactory.PushDockerImageAsync(_registry, "metrics/app", "1", "metrics");
        var blob = new byte[2 * 1024 * 1024];
        new Random(7).NextBytes(blob);
        _slow = await FaultyUpstream.StartAsync(blob);
        _slow.ChunkDelay = TimeSpan.FromMilliseconds(20);
    }

    public async Task DisposeAsync()
    {
        await _slow.DisposeAsync();
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private static async Task<PrometheusText> ScrapeAsync(MirrorServer mirror) => new(await mirror.Client.GetStringAsync("/metrics"));

    [Fact]
    public async Task Metrics_CountHitsMissesCoalescedAndStale_AndCacheSize()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri), ("slow.test", _slow.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:TagTtl"] = "00:00:00" });
        var layer = _image.Layers.First();
        var blobUrl = $"/v2/{_image.Repository}/blobs/{layer.Digest}?ns=docker.io";

        Assert.Equal(layer.Content, await mirror.Client.GetByteArrayAsync(blobUrl)); // miss
        Assert.Equal(layer.Content, await mirror.Client.GetByteArrayAsync(blobUrl)); // hit
        Assert.Equal(layer.Content, await mirror.Client.GetByteArrayAsync(blobUrl)); // hit

        var slowUrl = $"/v2/team/app/blobs/{_slow.Digest}?ns=slow.test";
        var bodies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => mirror.Client.GetByteArrayAsync(slowUrl)));
        Assert.All(bodies, body => Assert.Equal(_slow.Blob, body));

        Assert.Equal(_image.ManifestBytes, await mirror.Client.GetByteArrayAsync($"/v2/{_image.Repository}/manifests/{_image.Tag}?ns=docker.io")); // miss
        await _registry.StopAsync();
        using (var stale = await mirror.Client.GetAsync($"/v2/{_image.Repository}/manifests/{_image.Tag}?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.OK, stale.StatusCode);
        }

        using (var unknown = await mirror.Client.GetAsync($"/v2/{_image.Repository}/manifests/not-there?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unknown.StatusCode);
        }

        await _registry.StartAgainAsync();
        var metrics = await ScrapeAsync(mirror);

        const string requests = "mirrorproxy_requests_total";
        Assert.Equal(1, metrics.Sum(requests, ("kind", "blob"), ("result", "miss"), ("upstream", "docker.io")));
        Assert.Equal(2, metrics.Sum(requests, ("kind", "blob"), ("result", "hit"), ("upstream", "docker.io")));
        Assert.Equal(1, metrics.Sum(requests, ("kind", "blob"), ("result", "miss"), ("upstream", "slow.test")));
        Assert.Equal(7, metrics.Sum(requests, ("kind", "blob"), ("result", "coalesced"), ("upstream", "slow.test")));
        Assert.Equal(1, metrics.Sum(requests, ("kind", "manifest"), ("result", "miss"), ("upstream", "docker.io")));
        Assert.Equal(1, metrics.Sum(requests, ("kind", "manifest"), ("result", "stale"), ("upstream", "docker.io")));
        Assert.Equal(1, metrics.Sum(requests, ("kind", "manifest"), ("result", "error"), ("upstream", "docker.io")));
        Assert.Equal(layer.Size + _slow.Blob.Length, metrics.Sum("mirrorproxy_upstream_fetched_bytes_total"));
        // The manifest fetched now is served as it arrives (a download); served stale, it comes from the cache.
        Assert.Equal(2 * layer.Size + _image.ManifestSize, metrics.Sum("mirrorproxy_served_bytes_total", ("source", "cache")));
        Assert.Equal(layer.Size + 8L * _slow.Blob.Length + _image.ManifestSize, metrics.Sum("mirrorproxy_served_bytes_total", ("source", "download")));
        Assert.Equal(layer.Size + _slow.Blob.Length + _image.ManifestSize, metrics.Sum("mirrorproxy_cache_size_bytes"));
        Assert.Equal(3, metrics.Sum("mirrorproxy_cache_objects"));
        Assert.True(metrics.Sum("mirrorproxy_upstream_request_duration_seconds_count", ("upstream", "docker.io")) >= 3);
        Assert.Equal(1, metrics.Sum("mirrorproxy_upstream_state", ("upstream", "slow.test"), ("state", "healthy")));
        Assert.True(metrics.Has("mirrorproxy_cache_disk_free_bytes"));
    }

    [Fact]
    public async Task Metrics_IncludeTheRuntimesGcAndMemory()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)]);
        using (var manifest = await mirror.Client.GetAsync($"/v2/{_image.Repository}/manifests/{_image.Tag}?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
        }

        var metrics = await ScrapeAsync(mirror);

        Assert.True(metrics.Sum("dotnet_gc_heap_total_allocated_bytes_total") > 0);
        Assert.True(metrics.Sum("dotnet_process_memory_working_set_bytes") > 0);
        Assert.True(metrics.Has("dotnet_gc_collections_total"));
        Assert.True(metrics.Has("dotnet_gc_last_collection_memory_committed_size_bytes"));
    }

    [Fact]
    public async Task Readyz_StaysReadyWithTheUpstreamHung_AndReportsIt()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:Upstreams:0:RequestTimeout"] = "00:00:01", ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:30" });
        _registry.Pause();
        try
        {
            // Two timeouts mark the upstream down.
            for (var i = 0; i < 2; i++)
            {
                using var _ = await mirror.Client.GetAsync($"/v2/{_image.Repository}/manifests/{_image.Tag}?ns=docker.io");
            }

            using var ready = await mirror.Client.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            using var json = JsonDocument.Parse(await ready.Content.ReadAsByteArrayAsync());
            Assert.True(json.RootElement.GetProperty("ready").GetBoolean());
            Assert.Equal("down", json.RootElement.GetProperty("upstreams")[0].GetProperty("state").GetString());
            Assert.Equal(HttpStatusCode.OK, (await mirror.Client.GetAsync("/healthz")).StatusCode);
        }
        finally
        {
            _registry.Resume();
        }
    }

    [Fact]
    public async Task Readyz_FreeDiskBelowTheFloor_StaysInServiceAndReportsDegraded()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:Cache:MinFreeDisk"] = "1000000TiB" });

        using var ready = await mirror.Client.GetAsync("/readyz");

        // A mirror short of disk still serves everything it holds: reported, never taken out of service.
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var json = JsonDocument.Parse(await ready.Content.ReadAsByteArrayAsync());
        Assert.Equal("degraded", json.RootElement.GetProperty("status").GetString());
        Assert.Contains(json.RootElement.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("below the floor", StringComparison.Ordinal));
        Assert.Empty(json.RootElement.GetProperty("problems").EnumerateArray());
    }
}

/// <summary>
/// Runs alone: the exporter collects every meter named MirrorProxy in the process, so mirrors of tests running
/// in parallel would add to the counts (a production process hosts one mirror).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "metrics";
}
