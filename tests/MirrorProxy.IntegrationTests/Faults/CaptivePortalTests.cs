using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// The uplink goes through a captive portal (a ship's or a hotel's Wi-Fi): every request to the upstream, the
/// registry's ping included, gets 200 <c>text/html</c> with a login page. Cached tags go on being served as they
/// were, the page is never taken for a manifest nor stored, and once the portal lets traffic through the probe
/// brings the upstream back.
/// </summary>
public sealed class CaptivePortalTests : IAsyncLifetime
{
    private const string Upstream = "portal.test";
    private readonly TempDirectory _work = new("portal");
    private HostileRegistry _registry = null!;
    private MirrorServer _mirror = null!;
    private TestImage _cached = null!;
    private TestImage _uncached = null!;

    public async Task InitializeAsync()
    {
        _cached = OciImageFactory.BuildMultiArchImage("portal/app", "1", "portal-cached");
        _uncached = OciImageFactory.BuildDockerImage("portal/other", "1", "portal-uncached");
        _registry = await HostileRegistry.StartAsync(_cached, _uncached);
        _mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [(Upstream, _registry.BaseUri)], new Dictionary<string, string?>
        {
            ["MirrorProxy:TagTtl"] = "00:00:00",
            ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
        });
    }

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private string TagUrl(TestImage image) => $"/v2/{image.Repository}/manifests/{image.Tag}?ns={Upstream}";

    [Fact]
    public async Task PortalAnswersHtmlToEverything_CachedTagServedAndKept_UpstreamBackViaProbeWhenItGoes()
    {
        using (var warm = await FaultSupport.GetManifestAsync(_mirror.Client, TagUrl(_cached)))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        var moved = OciImageFactory.BuildMultiArchImage(_cached.Repository, _cached.Tag, "portal-moved");
        _registry.Add(moved);
        _registry.Set(HostileEndpoints.Registry, HostileBehavior.CaptivePortal);

        // Revalidation meets the portal (HEAD), then the mirror knows the upstream is intercepted: both serve the cached copy.
        for (var i = 0; i < 3; i++)
        {
            using var response = await FaultSupport.GetManifestAsync(_mirror.Client, TagUrl(_cached));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(_cached.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
            Assert.Equal(_cached.MediaType, response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(_cached.Digest, FaultSupport.Digest(response));
            Assert.True(response.Headers.Contains("Warning"));
        }

        using (var head = FaultSupport.ManifestRequest(HttpMethod.Head, TagUrl(_cached)))
        using (var headResponse = await _mirror.Client.SendAsync(head))
        {
            Assert.Equal(HttpStatusCode.OK, headResponse.StatusCode);
            Assert.Equal(_cached.Digest, FaultSupport.Digest(headResponse));
            Assert.Equal(_cached.ManifestSize, headResponse.Content.Headers.ContentLength);
        }

        // What is not cached is unavailable, not a login page passed on as content.
        using (var uncached = await FaultSupport.GetManifestAsync(_mirror.Client, TagUrl(_uncached)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
            Assert.Equal("UNAVAILABLE", await FaultSupport.ErrorCodeAsync(uncached));
        }

        Assert.Equal(_cached.Digest, FaultSupport.TagFileDigest(_mirror.CacheDirectory, Upstream, _cached.Repository, _cached.Tag));
        Assert.False(File.Exists(FaultSupport.BlobFile(_mirror.CacheDirectory, moved.Digest)));

        // The probe's GET /v2/ gets the page too: the upstream stays down while the portal is there.
        var pingsBefore = _registry.Count(HostileEndpoints.Ping);
        await Eventually.TrueAsync(() => _registry.Count(HostileEndpoints.Ping) >= pingsBefore + 2, TimeSpan.FromSeconds(10), "the probe has asked twice");
        Assert.Equal("down", await FaultSupport.UpstreamStateAsync(_mirror.Client));

        _registry.Heal();
        await Eventually.TrueAsync(async () => await FaultSupport.UpstreamStateAsync(_mirror.Client) == "healthy", TimeSpan.FromSeconds(10), "the probe brings the upstream back");

        using var after = await FaultSupport.GetManifestAsync(_mirror.Client, TagUrl(_cached));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(moved.Digest, FaultSupport.Digest(after));
        Assert.Equal(moved.ManifestBytes, await after.Content.ReadAsByteArrayAsync());
        Assert.False(after.Headers.Contains("Warning"));
        Assert.Equal(moved.Digest, FaultSupport.TagFileDigest(_mirror.CacheDirectory, Upstream, _cached.Repository, _cached.Tag));
    }
}
