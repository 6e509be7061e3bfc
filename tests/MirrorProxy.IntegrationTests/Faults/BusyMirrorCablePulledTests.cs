using System.Diagnostics;
using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Load;
using MirrorProxy.IntegrationTests.Infrastructure.Network;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// A busy mirror loses its uplink: a real registry (anonymous, or behind a token server) in a network namespace of
/// its own, whose cable is pulled while a background load keeps asking the mirror for a cached tag that it
/// revalidates on every request (TagTtl 0) with the default timeouts (connect 2 s, headers 3 s). The first
/// cached-tag request waits for one timeout at most; after it nothing dials out, so cached tags answer at once,
/// content that is not cached fails fast with 503, and containerd pulls the cached image. Once the cable is back,
/// the probe finds the upstream and a tag that moved meanwhile is followed.
/// </summary>
[Collection(BusyMirrorCollection.Name)]
public sealed class BusyMirrorCablePulledTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Repository = "island/app";
    private static readonly TimeSpan FirstRequestBound = TimeSpan.FromSeconds(3.5);
    private static readonly TimeSpan CachedP90Bound = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ProbeMargin = TimeSpan.FromSeconds(1.5);
    private readonly TempDirectory _work = new("cable");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        _work.Dispose();
        return Task.CompletedTask;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BusyMirror_CablePulled_CachedTagAnswersFast_UncachedIs503_ContainerdPulls_MovedTagFollowedAfterPlug(bool bearer)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        await using var upstream = await IsolatedUpstream.StartAsync(new IsolatedUpstreamOptions { BearerAuth = bearer }, cts.Token);
        var image = await OciImageFactory.PushAsync(upstream.Registry, OciImageFactory.BuildMultiArchImage(Repository, "1", $"cable-{bearer}"), cts.Token);
        var other = await OciImageFactory.PushAsync(upstream.Registry, OciImageFactory.BuildDockerImage("island/other", "1", $"cable-other-{bearer}"), cts.Token);

        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", upstream.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:TagTtl"] = "00:00:00" });
        var tagUrl = $"/v2/{Repository}/manifests/{image.Tag}?ns=docker.io";
        await WarmAsync(mirror, image);

        using var loadClient = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        await using var load = BackgroundLoad.Start(loadClient, new Uri(mirror.BaseUri, tagUrl), new BackgroundLoadOptions
        {
            Concurrency = 2,
            Interval = TimeSpan.FromMilliseconds(20),
            MaxRequests = 20_000,
            MaxDuration = TimeSpan.FromSeconds(120),
        });
        await load.WaitForSuccessesAsync(100, TimeSpan.FromSeconds(30), cancellationToken: cts.Token);

        await upstream.PullCableAsync(cts.Token);

        // The first cached-tag request after the cable went: at most one time-to-headers timeout.
        var stopwatch = Stopwatch.StartNew();
        using (var first = await FaultSupport.GetManifestAsync(mirror.Client, tagUrl, cts.Token))
        {
            var firstLatency = stopwatch.Elapsed;
            output.WriteLine($"first cached-tag request after the cable pull: {firstLatency.TotalMilliseconds:F0} ms");
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(image.ManifestBytes, await first.Content.ReadAsByteArrayAsync(cts.Token));
            Assert.True(firstLatency <= FirstRequestBound, $"the first cached-tag request took {firstLatency.TotalMilliseconds:F0} ms");
        }

        // Then the upstream is known to be down: nothing dials out (the mirror records no upstream request while its
        // own 100 and the background load are answered), and the cache answers at once. A request that waited on the
        // dead link would take a connect timeout at least; a pause of the whole test host (a GC, a stolen CPU) is
        // reported with the figures but is not the mirror dialing out.
        var attemptsBefore = UpstreamAttempts(await FaultSupport.ScrapeAsync(mirror.Client));
        var pausedBefore = GC.GetTotalPauseDuration();
        var latencies = new LatencyRecorder(100);
        for (var i = 0; i < 100; i++)
        {
            using var response = await latencies.MeasureAsync(() => FaultSupport.GetManifestAsync(mirror.Client, tagUrl, cts.Token));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(image.Digest, FaultSupport.Digest(response));
        }

        var paused = GC.GetTotalPauseDuration() - pausedBefore;
        var attempts = UpstreamAttempts(await FaultSupport.ScrapeAsync(mirror.Client)) - attemptsBefore;
        var summary = $"{latencies}; p90 {latencies.Percentile(90).TotalMilliseconds:F1} ms; upstream requests meanwhile {attempts}; GC pauses meanwhile {paused.TotalMilliseconds:F0} ms";
        output.WriteLine($"next 100 cached-tag requests: {summary}");
        Assert.True(attempts == 0, $"the mirror dialed out while the upstream was marked down: {summary}");
        Assert.True(latencies.Percentile(90) <= CachedP90Bound, $"cached-tag requests while the cable is out: {summary}");
        Assert.True(latencies.Max < ConnectTimeout, $"a cached-tag request took as long as a connect to the dead link: {summary}");

        // What is not cached fails fast with 503 and Retry-After, so containerd moves on; never DENIED, even
        // though the token server is behind the same cable.
        foreach (var url in new[]
                 {
                     $"/v2/{other.Repository}/manifests/{other.Tag}?ns=docker.io",
                     $"/v2/{other.Repository}/manifests/{other.Digest}?ns=docker.io",
                     $"/v2/{other.Repository}/blobs/{other.Blobs[0].Digest}?ns=docker.io",
                 })
        {
            stopwatch.Restart();
            using var uncached = await FaultSupport.GetManifestAsync(mirror.Client, url, cts.Token);
            var elapsed = stopwatch.Elapsed;
            output.WriteLine($"uncached {url}: {(int)uncached.StatusCode} in {elapsed.TotalMilliseconds:F1} ms");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
            Assert.Equal("UNAVAILABLE", await FaultSupport.ErrorCodeAsync(uncached));
            Assert.NotNull(uncached.Headers.RetryAfter);
            Assert.True(elapsed <= FirstRequestBound, $"{url} took {elapsed.TotalMilliseconds:F0} ms");
        }

        // containerd, through hosts.toml with the mirror as its only host, pulls the cached image.
        var hosts = _work.Combine("hosts");
        ContainerdDaemon.WriteHostsToml(hosts, "docker.io", mirror.BaseUri, mirrorOnly: true);
        await using (var containerd = await ContainerdDaemon.StartAsync(cts.Token))
        {
            stopwatch.Restart();
            (await containerd.PullAsync($"docker.io/{Repository}:{image.Tag}", hosts, "linux/amd64", cts.Token)).EnsureSuccess();
            output.WriteLine($"ctr pull with the cable out: {stopwatch.Elapsed.TotalMilliseconds:F0} ms");
            Assert.Contains(image.Digest, (await containerd.ListImagesAsync(cts.Token)).Select(i => i.Digest));
        }

        // The tag moves upstream while the cable is out (pushed from inside the namespace)...
        var moved = OciImageFactory.BuildMultiArchImage(Repository, image.Tag, $"cable-moved-{bearer}");
        using (var inside = new HttpClient(upstream.Network.CreateInsideHandler()))
        {
            await OciImageFactory.PushAsync(inside, upstream.BaseUri, moved, upstream.Registry.CreateAuthorization(Repository), cts.Token);
        }

        using (var stillCached = await FaultSupport.GetManifestAsync(mirror.Client, tagUrl, cts.Token))
        {
            Assert.Equal(image.Digest, FaultSupport.Digest(stillCached));
        }

        // ...and once it is back, the probe finds the upstream and the next revalidation follows the tag.
        await upstream.PlugCableAsync(cts.Token);
        stopwatch.Restart();
        var deadline = ProbeInterval + ProbeMargin + TimeSpan.FromSeconds(10);
        string digest;
        do
        {
            await Task.Delay(50, cts.Token);
            using var response = await FaultSupport.GetManifestAsync(mirror.Client, tagUrl, cts.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            digest = FaultSupport.Digest(response);
        }
        while (digest != moved.Digest && stopwatch.Elapsed < deadline);

        var pickedUp = stopwatch.Elapsed;
        output.WriteLine($"moved tag picked up {pickedUp.TotalMilliseconds:F0} ms after the cable was plugged back");
        Assert.Equal(moved.Digest, digest);
        Assert.True(pickedUp <= ProbeInterval + ProbeMargin, $"the moved tag was picked up {pickedUp.TotalMilliseconds:F0} ms after the cable came back");

        await load.StopAsync();
        output.WriteLine($"background load: {load}");
        Assert.Equal(0, load.Failed);
    }

    /// <summary>Requests the mirror sent to its upstreams (answered or not), from its time-to-headers histogram.</summary>
    private static double UpstreamAttempts(PrometheusText metrics) => metrics.Sum("mirrorproxy_upstream_request_duration_seconds_count");

    /// <summary>
    /// A probe can hang on a connection the pulled cable left half-open (the upstream's end is gone, ours waits),
    /// here a fake upstream whose <c>/v2/</c> never answers. When the link is back mid-hang, the upstream is still
    /// found within one probe interval (the default 5 s), not one interval after the hung probe gave up.
    /// </summary>
    [Fact]
    public async Task ProbeHangsWhenTheLinkComesBack_UpstreamIsFoundWithinTheProbeInterval()
    {
        var image = OciImageFactory.BuildDockerImage("hung/app", "1", "hung-probe");
        await using var registry = await HostileRegistry.StartAsync(image);
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("hung-cache"), [("docker.io", registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:TagTtl"] = "00:00:00" });
        var tagUrl = $"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io";
        using (var warm = await FaultSupport.GetManifestAsync(mirror.Client, tagUrl))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        registry.Set(HostileEndpoints.All, HostileBehavior.Hang);
        using (var stale = await FaultSupport.GetManifestAsync(mirror.Client, tagUrl))
        {
            Assert.Equal(HttpStatusCode.OK, stale.StatusCode);
        }

        Assert.Equal("down", await FaultSupport.UpstreamStateAsync(mirror.Client));
        await Eventually.TrueAsync(() => registry.Count(HostileEndpoints.Ping) >= 1, ProbeInterval + TimeSpan.FromSeconds(5), "a probe is sent");
        await Task.Delay(TimeSpan.FromSeconds(2)); // the link comes back while that probe hangs
        registry.Heal();
        var stopwatch = Stopwatch.StartNew();
        await Eventually.TrueAsync(async () => await FaultSupport.UpstreamStateAsync(mirror.Client) == "healthy", TimeSpan.FromSeconds(20), "the upstream is found again");
        output.WriteLine($"upstream found {stopwatch.Elapsed.TotalMilliseconds:F0} ms after the link came back during a hung probe");
        Assert.True(stopwatch.Elapsed <= ProbeInterval + ProbeMargin, $"the upstream was found {stopwatch.Elapsed.TotalMilliseconds:F0} ms after the link came back");
    }

    private static async Task WarmAsync(MirrorServer mirror, TestImage image)
    {
        using (var tag = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io"))
        {
            Assert.Equal(image.ManifestBytes, await tag.Content.ReadAsByteArrayAsync());
        }

        foreach (var manifest in image.Manifests)
        {
            using var response = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{image.Repository}/manifests/{manifest.Digest}?ns=docker.io");
            Assert.Equal(manifest.Content, await response.Content.ReadAsByteArrayAsync());
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }
    }
}

/// <summary>Runs alone: its latency bounds measure the mirror, not whatever else the two cores are doing.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BusyMirrorCollection
{
    public const string Name = "busy-mirror";
}
