using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// A cached tag whose upstream answers something other than the manifest: a 4xx the mirror has no use for (400,
/// 407 from a proxy in between, 418), a 5xx, a 429, or a redirect loop, at the revalidating HEAD or, when the tag
/// moved, at the GET that follows. The cached copy is served (200, with a Warning), never a 502.
/// </summary>
public sealed class UpstreamErrorAnswerTests : IAsyncLifetime
{
    private const string Upstream = "hostile.test";
    private readonly TempDirectory _work = new("answers");
    private HostileRegistry _registry = null!;
    private TestImage _cached = null!;

    public async Task InitializeAsync()
    {
        _cached = OciImageFactory.BuildDockerImage("answers/app", "1", "answers-cached");
        _registry = await HostileRegistry.StartAsync(_cached);
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    public static TheoryData<string, bool> Answers()
    {
        var data = new TheoryData<string, bool>();
        foreach (var answer in new[] { "400", "407", "418", "500", "429", "redirect-loop" })
        {
            data.Add(answer, false);
            data.Add(answer, true);
        }

        return data;
    }

    /// <param name="answer">What the upstream answers.</param>
    /// <param name="tagMoved">False: the HEAD that revalidates the tag gets the answer. True: the HEAD says the tag moved, and the GET of the new manifest gets it.</param>
    [Theory]
    [MemberData(nameof(Answers))]
    public async Task CachedTag_UpstreamAnswersWithoutAManifest_CachedCopyIsServedWithAWarning(string answer, bool tagMoved)
    {
        _registry.Heal();
        _registry.Add(_cached);
        var cache = _work.Combine($"cache-{answer}-{tagMoved}");
        await using var mirror = await MirrorServer.StartAsync(cache, [(Upstream, _registry.BaseUri)], new Dictionary<string, string?> { ["MirrorProxy:TagTtl"] = "00:00:00" });
        var url = $"/v2/{_cached.Repository}/manifests/{_cached.Tag}?ns={Upstream}";
        using (var warm = await FaultSupport.GetManifestAsync(mirror.Client, url))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        var behavior = answer == "redirect-loop" ? HostileBehavior.RedirectLoop : HostileBehavior.Status(int.Parse(answer, System.Globalization.CultureInfo.InvariantCulture));
        if (tagMoved)
        {
            _registry.Add(OciImageFactory.BuildDockerImage(_cached.Repository, _cached.Tag, "answers-moved"));
            _registry.Set(HostileEndpoints.TagManifestGet, behavior);
        }
        else
        {
            _registry.Set(HostileEndpoints.TagManifest, behavior);
        }

        _registry.ResetCounts();
        using var response = await FaultSupport.GetManifestAsync(mirror.Client, url);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(_cached.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(_cached.MediaType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(_cached.Digest, FaultSupport.Digest(response));
        Assert.Contains("299", Assert.Single(response.Headers.GetValues("Warning")), StringComparison.Ordinal);

        // The answer came from asking: the upstream saw the revalidation (and, when the tag moved, the GET too).
        Assert.True(_registry.Count(tagMoved ? HostileEndpoints.TagManifestGet : HostileEndpoints.TagManifestHead) >= 1);
        Assert.Equal(_cached.Digest, FaultSupport.TagFileDigest(cache, Upstream, _cached.Repository, _cached.Tag));
    }
}
