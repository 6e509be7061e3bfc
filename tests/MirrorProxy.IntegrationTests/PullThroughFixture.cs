using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// Two real upstreams (CNCF distribution from Debian's docker-registry) on loopback, one anonymous and one
/// behind basic auth, holding generated content: a multi-arch OCI index, a Docker schema 2 image, a Helm chart,
/// and an image with one large layer. Each test starts its own mirror against them.
/// </summary>
public sealed class PullThroughFixture : IAsyncLifetime
{
    internal static readonly RegistryCredentials Credentials = new("mirror", "s3cret-pass");

    internal TestRegistry Upstream { get; private set; } = null!;

    internal TestRegistry AuthUpstream { get; private set; } = null!;

    internal TestImage MultiArch { get; private set; } = null!;

    internal TestImage DockerImage { get; private set; } = null!;

    internal TestImage Chart { get; private set; } = null!;

    internal TestImage Large { get; private set; } = null!;

    internal TestImage Private { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var upstream = TestRegistry.StartAsync();
        var authUpstream = TestRegistry.StartAsync(new TestRegistryOptions { BasicAuth = Credentials });
        Upstream = await upstream;
        AuthUpstream = await authUpstream;

        MultiArch = await OciImageFactory.PushMultiArchImageAsync(Upstream, "team/app", "1.0", "multi");
        DockerImage = await OciImageFactory.PushDockerImageAsync(Upstream, "library/busybox", "1.36", "docker");
        Chart = await OciImageFactory.PushHelmChartAsync(Upstream, "charts/mychart", "0.1.0", "chart");
        Large = await OciImageFactory.PushLargeBlobImageAsync(Upstream, "big/blob", "1", "large", 48L * 1024 * 1024);
        Private = await OciImageFactory.PushMultiArchImageAsync(AuthUpstream, "private/app", "2.0", "private");
    }

    /// <summary>A mirror with <c>docker.io</c> (default) pointing at the anonymous upstream and <c>auth.test</c> at the other.</summary>
    internal Task<MirrorServer> StartMirrorAsync(string cacheDirectory, bool withCredentials = true, IDictionary<string, string?>? settings = null)
    {
        var values = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>());
        if (withCredentials)
        {
            values["MirrorProxy:Upstreams:1:Username"] = Credentials.Username;
            values["MirrorProxy:Upstreams:1:Password"] = Credentials.Password;
            // These tests are about pulling through; who may pull is for the access-control tests: share it with every client.
            values["MirrorProxy:Upstreams:1:Anonymous"] = "true";
        }

        return MirrorServer.StartAsync(cacheDirectory, [("docker.io", Upstream.BaseUri), ("auth.test", AuthUpstream.BaseUri)], values);
    }

    public async Task DisposeAsync()
    {
        await Upstream.DisposeAsync();
        await AuthUpstream.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class PullThroughCollection : ICollectionFixture<PullThroughFixture>
{
    public const string Name = "pull-through";
}
