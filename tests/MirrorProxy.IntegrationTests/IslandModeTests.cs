using System.Diagnostics;
using System.Net;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// The upstream (a real distribution registry, alone or behind a fault-injecting front) fails in each way an
/// island sees: refused, hung, 500, 429, trickling, TLS failure, or an explicit offline switch. Cached content
/// keeps being served, uncached content fails fast, and the mirror recovers when the upstream comes back.
/// Latency bounds are deliberately generous: the configured timeouts are 1 s, the assertions 5 s.
/// </summary>
public sealed class IslandModeTests : IAsyncLifetime
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(5);
    private readonly TempDirectory _work = new("island");
    private TestRegistry _registry = null!;
    private FaultProxy _proxy = null!;
    private TestImage _cached = null!;
    private TestImage _uncached = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        _proxy = await FaultProxy.StartAsync(_registry.BaseUri);
        _cached = await OciImageFactory.PushMultiArchImageAsync(_registry, "island/app", "1", "island-cached");
        _uncached = await OciImageFactory.PushDockerImageAsync(_registry, "island/other", "1", "island-uncached");
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private static Dictionary<string, string?> Timeouts() => new()
    {
        ["MirrorProxy:TagTtl"] = "00:00:00",
        ["MirrorProxy:Upstreams:0:ConnectTimeout"] = "00:00:01",
        ["MirrorProxy:Upstreams:0:RequestTimeout"] = "00:00:01",
        ["MirrorProxy:Upstreams:0:BlobRequestTimeout"] = "00:00:02",
        ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
        ["MirrorProxy:Upstreams:0:BreakerSamplingDuration"] = "00:00:10",
    };

    private Task<MirrorServer> StartMirrorAsync(Uri upstream, IDictionary<string, string?>? extra = null)
    {
        var settings = Timeouts();
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", upstream)], settings);
    }

    /// <summary>
    /// Pulls <paramref name="image"/> into the cache through a mirror with the default timeouts, then stops it: the
    /// warm-up is not under test, and on a loaded machine the fault tests' 1 s timeouts can fail it.
    /// </summary>
    private async Task WarmCacheAsync(Uri upstream, TestImage image)
    {
        await using var mirror = await StartWarmingMirrorAsync(upstream);
        await WarmAsync(mirror, image);
    }

    /// <summary>A mirror over the same cache with the default timeouts, to fill it.</summary>
    private Task<MirrorServer> StartWarmingMirrorAsync(Uri upstream) => MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", upstream)]);

    private static async Task WarmAsync(MirrorServer mirror, TestImage image)
    {
        Assert.Equal(image.ManifestBytes, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io"));
        foreach (var manifest in image.Manifests)
        {
            Assert.Equal(manifest.Content, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/manifests/{manifest.Digest}?ns=docker.io"));
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }
    }

    [Theory]
    [InlineData("refused")]
    [InlineData("hung")]
    [InlineData("server-error")]
    [InlineData("rate-limited")]
    [InlineData("trickle")]
    public async Task UpstreamFault_CachedServed_UncachedFailsFast_ThenRecoversAndFollowsMovedTag(string fault)
    {
        var direct = fault is "refused" or "hung";
        var upstream = direct ? _registry.BaseUri : _proxy.BaseUri;
        await WarmCacheAsync(upstream, _cached);
        await using var mirror = await StartMirrorAsync(upstream);

        await InjectAsync(fault);

        var stopwatch = Stopwatch.StartNew();
        using (var response = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io"))
        {
            Assert.True(stopwatch.Elapsed < Generous, $"cached tag took {stopwatch.Elapsed}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(_cached.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
            Assert.Equal(_cached.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
            if (fault != "trickle")
            {
                // A trickling upstream still answers HEAD at once, so the tag revalidates; every other fault serves it stale.
                Assert.Contains("299", response.Headers.GetValues("Warning").Single(), StringComparison.Ordinal);
            }
        }

        foreach (var blob in _cached.Blobs)
        {
            Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync($"/v2/{_cached.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }

        stopwatch.Restart();
        using (var uncached = await mirror.Client.GetAsync($"/v2/{_uncached.Repository}/manifests/{_uncached.Tag}?ns=docker.io"))
        {
            Assert.True(stopwatch.Elapsed < Generous, $"uncached tag took {stopwatch.Elapsed}");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
            Assert.Equal("UNAVAILABLE", await PullThroughTests.ErrorCodeAsync(uncached));
            Assert.NotNull(uncached.Headers.RetryAfter);
        }

        for (var i = 0; i < 10; i++)
        {
            stopwatch.Restart();
            using var again = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io");
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.True(stopwatch.Elapsed < Generous, $"cached tag request {i + 2} took {stopwatch.Elapsed}");
        }

        if (fault != "trickle")
        {
            Assert.Equal("down", await UpstreamStateAsync(mirror));
        }

        await HealAsync(fault);
        var moved = await OciImageFactory.PushDockerImageAsync(_registry, _cached.Repository, _cached.Tag, "island-moved");
        await WaitForStateAsync(mirror, "healthy");

        using var after = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(moved.Digest, after.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.False(after.Headers.Contains("Warning"));
    }

    [Fact]
    public async Task TlsHandshakeFailure_CachedServedStale_UncachedFailsFast()
    {
        await WarmCacheAsync(_proxy.BaseUri, _cached);

        // The same cache, now behind an https:// URL whose server speaks plain HTTP: every handshake fails.
        await using var mirror = await StartMirrorAsync(new Uri($"https://127.0.0.1:{_proxy.BaseUri.Port}"));

        using var cached = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io");
        Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
        Assert.Equal(_cached.Digest, cached.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.True(cached.Headers.Contains("Warning"));

        var stopwatch = Stopwatch.StartNew();
        using var uncached = await mirror.Client.GetAsync($"/v2/{_uncached.Repository}/manifests/{_uncached.Tag}?ns=docker.io");
        Assert.True(stopwatch.Elapsed < Generous, $"uncached tag took {stopwatch.Elapsed}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
    }

    [Fact]
    public async Task ContainerdPullOfCachedImage_SucceedsWhileUpstreamHung()
    {
        var reference = $"docker.io/{_cached.Repository}:{_cached.Tag}";
        await using (var warm = await StartWarmingMirrorAsync(_registry.BaseUri))
        {
            // The first pull fills the cache through a mirror with the default timeouts (see WarmCacheAsync).
            var warmHosts = _work.Combine("hosts-warm");
            ContainerdDaemon.WriteHostsToml(warmHosts, "docker.io", warm.BaseUri, mirrorOnly: true);
            await using var cold = await ContainerdDaemon.StartAsync();
            (await cold.PullAsync(reference, warmHosts, "linux/amd64")).EnsureSuccess();
        }

        await using var mirror = await StartMirrorAsync(_registry.BaseUri);
        var hosts = _work.Combine("hosts");
        ContainerdDaemon.WriteHostsToml(hosts, "docker.io", mirror.BaseUri, mirrorOnly: true);
        _registry.Pause();
        try
        {
            await using var island = await ContainerdDaemon.StartAsync();
            (await island.PullAsync(reference, hosts, "linux/amd64")).EnsureSuccess();
            Assert.Contains(_cached.Digest, (await island.ListContentAsync()).Select(c => c.Digest));
        }
        finally
        {
            _registry.Resume();
        }
    }

    [Fact]
    public async Task OfflineSwitch_NeverDialsOut_ServesCacheAndTagList_UntilSwitchedBack()
    {
        await WarmCacheAsync(_proxy.BaseUri, _cached);
        await using var mirror = await StartMirrorAsync(_proxy.BaseUri);

        using (var on = await mirror.Client.PutAsync("/admin/offline?enabled=true", null))
        {
            Assert.Equal(HttpStatusCode.OK, on.StatusCode);
        }

        var before = _proxy.Requests;
        using (var cached = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
            Assert.Equal(_cached.Digest, cached.Headers.GetValues("Docker-Content-Digest").Single());
        }

        using (var uncached = await mirror.Client.GetAsync($"/v2/{_uncached.Repository}/manifests/{_uncached.Tag}?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
        }

        using (var tags = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/tags/list?ns=docker.io"))
        {
            Assert.Equal(HttpStatusCode.OK, tags.StatusCode);
            using var json = JsonDocument.Parse(await tags.Content.ReadAsByteArrayAsync());
            Assert.Equal([_cached.Tag], json.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        }

        Assert.Equal("offline", await UpstreamStateAsync(mirror));
        Assert.Equal(before, _proxy.Requests);

        using (var off = await mirror.Client.PutAsync("/admin/offline?enabled=false", null))
        {
            Assert.Equal(HttpStatusCode.OK, off.StatusCode);
        }

        using var online = await mirror.Client.GetAsync($"/v2/{_uncached.Repository}/manifests/{_uncached.Tag}?ns=docker.io");
        Assert.Equal(HttpStatusCode.OK, online.StatusCode);
        Assert.True(_proxy.Requests > before);
    }

    [Theory]
    [InlineData(false, HttpStatusCode.OK)]
    [InlineData(true, HttpStatusCode.NotFound)]
    public async Task UpstreamDeletesCachedTag_PolicyDecides(bool honourNotFound, HttpStatusCode expected)
    {
        await WarmCacheAsync(_registry.BaseUri, _cached);
        await using var mirror = await StartMirrorAsync(_registry.BaseUri, new Dictionary<string, string?> { ["MirrorProxy:HonourUpstreamNotFound"] = honourNotFound.ToString() });
        using (var client = _registry.CreateHttpClient())
        {
            using var deleted = await client.DeleteAsync($"/v2/{_cached.Repository}/manifests/{_cached.Digest}");
            Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        }

        using var response = await mirror.Client.GetAsync($"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns=docker.io");

        Assert.Equal(expected, response.StatusCode);
        if (expected == HttpStatusCode.OK)
        {
            Assert.Equal(_cached.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        }
        else
        {
            Assert.Equal("MANIFEST_UNKNOWN", await PullThroughTests.ErrorCodeAsync(response));
        }
    }

    private async Task InjectAsync(string fault)
    {
        switch (fault)
        {
            case "refused": await _registry.StopAsync(); break;
            case "hung": _registry.Pause(); break;
            case "server-error": _proxy.Fault = UpstreamFault.ServerError; break;
            case "rate-limited": _proxy.Fault = UpstreamFault.RateLimited; break;
            case "trickle": _proxy.Fault = UpstreamFault.Trickle; break;
        }
    }

    private async Task HealAsync(string fault)
    {
        switch (fault)
        {
            case "refused": await _registry.StartAgainAsync(); break;
            case "hung": _registry.Resume(); break;
            default: _proxy.Fault = UpstreamFault.None; break;
        }
    }

    private static async Task<string> UpstreamStateAsync(MirrorServer mirror)
    {
        using var json = JsonDocument.Parse(await mirror.Client.GetByteArrayAsync("/admin/upstreams"));
        return json.RootElement[0].GetProperty("state").GetString()!;
    }

    private static async Task WaitForStateAsync(MirrorServer mirror, string state)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        string current;
        while ((current = await UpstreamStateAsync(mirror)) != state)
        {
            Assert.True(DateTime.UtcNow < deadline, $"upstream stayed {current}, expected {state}");
            await Task.Delay(100);
        }
    }
}
