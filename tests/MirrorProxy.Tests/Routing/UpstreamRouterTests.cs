using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Routing;

public sealed class UpstreamRouterTests : IDisposable
{
    private readonly UpstreamRegistry _dockerHub = Upstream("docker.io", "https://registry-1.docker.io", "index.docker.io");
    private readonly UpstreamRegistry _ghcr = Upstream("ghcr.io", "https://ghcr.io");
    private readonly UpstreamRegistry _k8s = Upstream("registry.k8s.io", "https://registry.k8s.io", "k8s");
    private readonly UpstreamRouter _router;

    public UpstreamRouterTests()
    {
        _router = new UpstreamRouter(new UpstreamRegistrySet([_dockerHub, _ghcr, _k8s], _dockerHub));
    }

    [Fact]
    public void TryRoute_NsNamesAnUpstream_RoutesThereWithNamespace()
    {
        Assert.True(_router.TryRoute("owner/app", "ghcr.io", out var route, out _));

        Assert.Equal(new Route(_ghcr, "owner/app", "ghcr.io"), route);
    }

    [Fact]
    public void TryRoute_NsDockerIoSingleSegment_GetsLibraryPrefix()
    {
        Assert.True(_router.TryRoute("nginx", "docker.io", out var route, out _));

        Assert.Same(_dockerHub, route.Upstream);
        Assert.Equal("library/nginx", route.Repository);
        Assert.Equal("docker.io", route.Namespace);
    }

    [Fact]
    public void TryRoute_NsOtherUpstreamSingleSegment_HasNoLibraryPrefix()
    {
        Assert.True(_router.TryRoute("pause", "registry.k8s.io", out var route, out _));

        Assert.Equal(new Route(_k8s, "pause", "registry.k8s.io"), route);
    }

    [Fact]
    public void TryRoute_NsIsAnAlias_RoutesToItsUpstreamEchoingTheAlias()
    {
        Assert.True(_router.TryRoute("nginx", "index.docker.io", out var route, out _));

        Assert.Equal(new Route(_dockerHub, "library/nginx", "index.docker.io"), route);
    }

    [Fact]
    public void TryRoute_NsInOtherCase_StillMatches()
    {
        Assert.True(_router.TryRoute("owner/app", "GHCR.io", out var route, out _));

        Assert.Same(_ghcr, route.Upstream);
    }

    [Fact]
    public void TryRoute_UnknownNs_IsNameUnknown404()
    {
        Assert.False(_router.TryRoute("org/app", "quay.io", out _, out var error));

        Assert.Equal(404, error.Status);
        Assert.Equal(OciErrorCode.NameUnknown, error.Code);
        Assert.Contains("quay.io", error.Message);
    }

    [Fact]
    public void TryRoute_FirstSegmentNamesAnUpstream_StripsIt()
    {
        Assert.True(_router.TryRoute("ghcr.io/owner/app", null, out var route, out _));

        Assert.Equal(new Route(_ghcr, "owner/app", null), route);
    }

    [Fact]
    public void TryRoute_FirstSegmentIsAnAlias_StripsIt()
    {
        Assert.True(_router.TryRoute("k8s/pause", null, out var route, out _));

        Assert.Equal(new Route(_k8s, "pause", null), route);
    }

    [Fact]
    public void TryRoute_DockerIoPrefixSingleSegment_GetsLibraryPrefix()
    {
        Assert.True(_router.TryRoute("docker.io/nginx", null, out var route, out _));

        Assert.Equal(new Route(_dockerHub, "library/nginx", null), route);
    }

    [Theory]
    [InlineData("bitnami/redis", "bitnami/redis")]
    [InlineData("nginx", "library/nginx")]
    [InlineData("quay.io/org/app", "quay.io/org/app")]
    public void TryRoute_NoNsNoKnownPrefix_UsesTheDefaultUpstream(string name, string repository)
    {
        Assert.True(_router.TryRoute(name, null, out var route, out _));

        Assert.Equal(new Route(_dockerHub, repository, null), route);
    }

    [Fact]
    public void TryRoute_EmptyNs_IsTreatedAsAbsent()
    {
        Assert.True(_router.TryRoute("ghcr.io/owner/app", "", out var route, out _));

        Assert.Equal(new Route(_ghcr, "owner/app", null), route);
    }

    [Fact]
    public void TryRoute_NsAndPathPrefix_NsWins()
    {
        Assert.True(_router.TryRoute("ghcr.io/owner/app", "docker.io", out var route, out _));

        Assert.Equal(new Route(_dockerHub, "ghcr.io/owner/app", "docker.io"), route);
    }

    [Fact]
    public void TryRoute_NoDefaultUpstream_UnroutedNameIsNameUnknown()
    {
        var router = new UpstreamRouter(new UpstreamRegistrySet([_ghcr], null));

        Assert.False(router.TryRoute("bitnami/redis", null, out _, out var error));
        Assert.Equal(404, error.Status);
        Assert.Equal(OciErrorCode.NameUnknown, error.Code);

        Assert.True(router.TryRoute("ghcr.io/owner/app", null, out var route, out _));
        Assert.Same(_ghcr, route.Upstream);
    }

    [Theory]
    [InlineData("library/nginx", true)]
    [InlineData("ghcr.io/owner/app", true)]
    [InlineData("Library/nginx", false)]
    [InlineData("a//b", false)]
    [InlineData("../etc", false)]
    public void IsValidName_RepositoryGrammar_IsApplied(string name, bool valid)
    {
        Assert.Equal(valid, UpstreamRouter.IsValidName(name));
    }

    public void Dispose()
    {
        _dockerHub.Dispose();
        _ghcr.Dispose();
        _k8s.Dispose();
    }

    private static UpstreamRegistry Upstream(string name, string url, params string[] aliases) => TestUpstreams.Create(
        new UpstreamOptions { Name = name, Url = url, Aliases = [.. aliases] },
        new FakeHttpHandler(_ => throw new InvalidOperationException("routing must not dial")));
}
