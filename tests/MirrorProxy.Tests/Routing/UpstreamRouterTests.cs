using MirrorProxy.Oci;
using MirrorProxy.Protocol;
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
    public void Route_NsNamesAnUpstream_RoutesThereWithNamespace()
    {
        var route = Routed(_router.Route("owner/app", "ghcr.io"));

        Assert.Equal(new Route(_ghcr, "owner/app", "ghcr.io"), route);
    }

    [Fact]
    public void Route_NsDockerIoSingleSegment_GetsLibraryPrefix()
    {
        var route = Routed(_router.Route("nginx", "docker.io"));

        Assert.Same(_dockerHub, route.Upstream);
        Assert.Equal("library/nginx", route.Repository);
        Assert.Equal("docker.io", route.Namespace);
    }

    [Fact]
    public void Route_NsOtherUpstreamSingleSegment_HasNoLibraryPrefix()
    {
        var route = Routed(_router.Route("pause", "registry.k8s.io"));

        Assert.Equal(new Route(_k8s, "pause", "registry.k8s.io"), route);
    }

    [Fact]
    public void Route_NsIsAnAlias_RoutesToItsUpstreamEchoingTheAlias()
    {
        var route = Routed(_router.Route("nginx", "index.docker.io"));

        Assert.Equal(new Route(_dockerHub, "library/nginx", "index.docker.io"), route);
    }

    [Fact]
    public void Route_NsInOtherCase_StillMatches()
    {
        var route = Routed(_router.Route("owner/app", "GHCR.io"));

        Assert.Same(_ghcr, route.Upstream);
    }

    [Fact]
    public void Route_UnknownNs_IsNameUnknown404()
    {
        var result = _router.Route("org/app", "quay.io");
        var error = OciErrors.Route(result);

        Assert.Equal(RouteStatus.UnknownNamespace, result.Status);
        Assert.Equal(404, error.Status);
        Assert.Equal(OciErrorCode.NameUnknown, error.Code);
        Assert.Contains("quay.io", error.Message);
    }

    [Fact]
    public void Route_FirstSegmentNamesAnUpstream_StripsIt()
    {
        var route = Routed(_router.Route("ghcr.io/owner/app", null));

        Assert.Equal(new Route(_ghcr, "owner/app", null), route);
    }

    [Fact]
    public void Route_FirstSegmentIsAnAlias_StripsIt()
    {
        var route = Routed(_router.Route("k8s/pause", null));

        Assert.Equal(new Route(_k8s, "pause", null), route);
    }

    [Fact]
    public void Route_DockerIoPrefixSingleSegment_GetsLibraryPrefix()
    {
        var route = Routed(_router.Route("docker.io/nginx", null));

        Assert.Equal(new Route(_dockerHub, "library/nginx", null), route);
    }

    [Theory]
    [InlineData("bitnami/redis", "bitnami/redis")]
    [InlineData("nginx", "library/nginx")]
    [InlineData("quay.io/org/app", "quay.io/org/app")]
    public void Route_NoNsNoKnownPrefix_UsesTheDefaultUpstream(string name, string repository)
    {
        var route = Routed(_router.Route(name, null));

        Assert.Equal(new Route(_dockerHub, repository, null), route);
    }

    [Fact]
    public void Route_EmptyNs_IsTreatedAsAbsent()
    {
        var route = Routed(_router.Route("ghcr.io/owner/app", ""));

        Assert.Equal(new Route(_ghcr, "owner/app", null), route);
    }

    [Fact]
    public void Route_NsAndPathPrefix_NsWins()
    {
        var route = Routed(_router.Route("ghcr.io/owner/app", "docker.io"));

        Assert.Equal(new Route(_dockerHub, "ghcr.io/owner/app", "docker.io"), route);
    }

    [Fact]
    public void Route_NoDefaultUpstream_UnroutedNameIsNameUnknown()
    {
        var router = new UpstreamRouter(new UpstreamRegistrySet([_ghcr], null));

        var unrouted = router.Route("bitnami/redis", null);
        Assert.Equal(RouteStatus.NoUpstream, unrouted.Status);
        var error = OciErrors.Route(unrouted);
        Assert.Equal(404, error.Status);
        Assert.Equal(OciErrorCode.NameUnknown, error.Code);

        var route = Routed(router.Route("ghcr.io/owner/app", null));
        Assert.Same(_ghcr, route.Upstream);
    }

    [Theory]
    [InlineData("library/nginx", true)]
    [InlineData("ghcr.io/owner/app", true)]
    [InlineData("Library/nginx", false)]
    [InlineData("a//b", false)]
    [InlineData("../etc", false)]
    public void Route_RepositoryGrammar_IsAppliedBeforeRouting(string name, bool valid)
    {
        var result = _router.Route(name, "docker.io");

        Assert.Equal(valid ? RouteStatus.Routed : RouteStatus.InvalidName, result.Status);
        if (!valid)
        {
            Assert.Equal(400, OciErrors.Route(result).Status);
        }
    }

    private static Route Routed(RouteResult result)
    {
        Assert.Equal(RouteStatus.Routed, result.Status);
        return result.Route;
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
