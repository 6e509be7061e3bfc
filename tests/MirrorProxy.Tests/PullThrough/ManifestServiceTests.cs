using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Coordination;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Resilience;
using MirrorProxy.Routing;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.PullThrough;

public sealed class ManifestServiceTests : IDisposable
{
    private const string Repository = "team/app";
    private static readonly byte[] Manifest = Image("one");
    private static readonly byte[] Moved = Image("two");
    private readonly ManualTimeProvider _time = new();
    private readonly TestCache _cache;
    private readonly TestRegistryUpstream _registry = new();
    private readonly OfflineMode _offline = new(false);
    private readonly UpstreamRegistry _upstream;
    private readonly Route _route;

    public ManifestServiceTests()
    {
        _cache = new TestCache(_time);
        _upstream = new UpstreamRegistry(
            new UpstreamOptions { Name = "registry.test", Url = "https://registry.test" }, new HttpMessageInvoker(_registry.Handler), _offline,
            TestUpstreams.Background, TestMetrics.Create(), _time, NullLoggerFactory.Instance);
        _route = new Route(_upstream, Repository, null);
    }

    [Fact]
    public async Task ByTag_ColdThenWithinTheTtl_FetchesOnceThenHitsWithoutAsking()
    {
        var digest = _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var service = Service(ttl: TimeSpan.FromMinutes(5));

        var cold = await service.GetByTagAsync(_route, "1", CancellationToken.None);
        var warm = await service.GetByTagAsync(_route, "1", CancellationToken.None);

        Assert.Equal((ManifestStatus.Fetched, digest, MediaTypes.OciManifest), (cold.Status, cold.Digest, cold.MediaType));
        Assert.Equal(Manifest, cold.Content);
        Assert.Equal((ManifestStatus.Hit, digest), (warm.Status, warm.Digest));
        Assert.Equal(Manifest, warm.Content);
        Assert.Single(_registry.Handler.Requests);
    }

    [Fact]
    public async Task ByTag_PastTheTtlAndUnchanged_IsConfirmedWithOneHead()
    {
        _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var service = Service(ttl: TimeSpan.Zero);
        await service.GetByTagAsync(_route, "1", CancellationToken.None);

        var again = await service.GetByTagAsync(_route, "1", CancellationToken.None);

        Assert.Equal(ManifestStatus.Hit, again.Status);
        Assert.Equal(1, _registry.Count("HEAD", "/manifests/"));
        Assert.Equal(1, _registry.Count("GET", "/manifests/"));
    }

    [Fact]
    public async Task ByTag_MovedUpstream_FetchesTheNewManifestAndMovesTheTag()
    {
        _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var service = Service(ttl: TimeSpan.Zero);
        await service.GetByTagAsync(_route, "1", CancellationToken.None);
        var moved = _registry.AddManifest(Repository, "1", Moved, MediaTypes.OciManifest);

        var result = await service.GetByTagAsync(_route, "1", CancellationToken.None);

        Assert.Equal((ManifestStatus.Fetched, moved), (result.Status, result.Digest));
        Assert.Equal(moved, (await _cache.Cache.GetTagAsync("registry.test", Repository, "1", CancellationToken.None))!.Digest);
    }

    [Theory]
    [InlineData("html")]
    [InlineData("not-a-manifest")]
    [InlineData("418")]
    [InlineData("407")]
    [InlineData("redirect-loop")]
    [InlineData("500")]
    public async Task ByTag_UnusableAnswerForACachedTag_ServesTheCachedCopyAndKeepsTheTag(string answer)
    {
        var digest = _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var service = Service(ttl: TimeSpan.Zero);
        await service.GetByTagAsync(_route, "1", CancellationToken.None);
        _registry.Override = request => answer switch
        {
            "html" => FakeHttpHandler.Html("<html><body>Accept the terms of the harbour Wi-Fi</body></html>"),
            "not-a-manifest" => request.Method == HttpMethod.Head ? null : FakeHttpHandler.Json("""{"hello":"world"}"""),
            "redirect-loop" => FakeHttpHandler.Redirect(request.RequestUri!.ToString()),
            _ => FakeHttpHandler.Status((HttpStatusCode)int.Parse(answer)),
        };
        if (answer == "not-a-manifest")
        {
            // The HEAD says the tag moved, and the GET brings something that is not a manifest.
            _registry.AddManifest(Repository, "1", Moved, MediaTypes.OciManifest);
        }

        var result = await service.GetByTagAsync(_route, "1", CancellationToken.None);

        Assert.Equal((ManifestStatus.Stale, digest), (result.Status, result.Digest));
        Assert.Equal(Manifest, result.Content);
        Assert.Equal(MediaTypes.OciManifest, result.MediaType);
        Assert.Equal(digest, (await _cache.Cache.GetTagAsync("registry.test", Repository, "1", CancellationToken.None))!.Digest);
    }

    [Fact]
    public async Task ByTag_UpstreamMarkedDown_ServesTheCachedTagWithoutDialing()
    {
        _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var service = Service(ttl: TimeSpan.Zero);
        await service.GetByTagAsync(_route, "1", CancellationToken.None);
        _registry.Override = _ => throw new HttpRequestException(HttpRequestError.ConnectionError, "no route to host");
        Assert.Equal(ManifestStatus.Stale, (await service.GetByTagAsync(_route, "1", CancellationToken.None)).Status);
        var dialed = _registry.Handler.Requests.Count;

        for (var i = 0; i < 20; i++)
        {
            var result = await service.GetByTagAsync(_route, "1", CancellationToken.None);
            Assert.Equal(ManifestStatus.Stale, result.Status);
            Assert.Equal(Manifest, result.Content);
        }

        Assert.Equal(dialed, _registry.Handler.Requests.Count);
    }

    [Fact]
    public async Task ByTag_NothingCachedAndTheAnswerIsNotAManifest_IsInvalidAndNothingIsStored()
    {
        _registry.Override = _ => FakeHttpHandler.Html("<html>login</html>");
        var service = Service(ttl: TimeSpan.Zero);

        var result = await service.GetByTagAsync(_route, "1", CancellationToken.None);

        Assert.False(result.Found);
        Assert.Null(await _cache.Cache.GetTagAsync("registry.test", Repository, "1", CancellationToken.None));
        Assert.Equal(0, _cache.Cache.ObjectCount);
    }

    [Fact]
    public async Task ByDigest_ALayerAskedForAsAManifest_IsNeverReadAsOne()
    {
        var layer = new byte[5 * 1024 * 1024];
        var digest = await _cache.PutBlobAsync(layer);
        var service = Service(ttl: TimeSpan.Zero);

        var result = await service.GetByDigestAsync(_route, digest, CancellationToken.None);

        Assert.Equal(ManifestStatus.NotFound, result.Status);
        Assert.Null(result.Content);
        // Nor is the upstream asked to read it as one (distribution answers that with a 500, which counts against it).
        Assert.Equal(0, _registry.Count("GET", "/manifests/"));
    }

    [Fact]
    public async Task ByDigest_ASmallBlobAskedForAsAManifest_IsNotServedAsOne()
    {
        var config = Encoding.UTF8.GetBytes("""{"architecture":"amd64","os":"linux"}""");
        var digest = await _cache.PutBlobAsync(config);
        var service = Service(ttl: TimeSpan.Zero);

        var result = await service.GetByDigestAsync(_route, digest, CancellationToken.None);

        Assert.Equal(ManifestStatus.NotFound, result.Status);
    }

    [Fact]
    public async Task ConcurrentRequestsForOneTag_ShareOneExchange()
    {
        _registry.AddManifest(Repository, "1", Manifest, MediaTypes.OciManifest);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _registry.Gate = gate;
        var service = Service(ttl: TimeSpan.Zero);

        var requests = Enumerable.Range(0, 6).Select(_ => service.GetByTagAsync(_route, "1", CancellationToken.None).AsTask()).ToList();
        await Task.Delay(100);
        gate.SetResult();
        var results = await Task.WhenAll(requests);

        Assert.All(results, r => Assert.Equal(Manifest, r.Content));
        Assert.Equal(1, _registry.Count("GET", "/manifests/"));
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _cache.Dispose();
    }

    private ManifestService Service(TimeSpan ttl)
    {
        var options = Options.Create(new PullThroughOptions { TagTtl = ttl });
        return new ManifestService(_cache.Cache, new LocalCoordination(), TestMetrics.Create(), _time, new TagFreshnessPolicy(options), options, TestUpstreams.Background,
            NullLogger<ManifestService>.Instance);
    }

    private static byte[] Image(string seed) => Encoding.UTF8.GetBytes(
        $$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{Digest.ComputeSha256(Encoding.UTF8.GetBytes(seed))}}","size":{{seed.Length}}},"layers":[]}""");
}
