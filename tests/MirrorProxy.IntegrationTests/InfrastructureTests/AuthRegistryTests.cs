using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

public sealed class AuthRegistryFixture : IAsyncLifetime
{
    private TestRegistry? _registry;

    internal static RegistryCredentials Credentials { get; } = new("mirror-user", "s3cret-Pass");

    internal TestRegistry Registry => _registry ?? throw new InvalidOperationException("Fixture not initialized.");

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        _registry = await TestRegistry.StartAsync(new TestRegistryOptions { BasicAuth = Credentials }, cts.Token);
    }

    public async Task DisposeAsync()
    {
        if (_registry is not null)
        {
            await _registry.DisposeAsync();
        }
    }
}

public sealed class AuthRegistryTests(AuthRegistryFixture fixture) : IClassFixture<AuthRegistryFixture>
{
    [Fact]
    public async Task AnonymousAndWrongCredentialsGet401AndRightCredentials200()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var registry = fixture.Registry;

        using (var anonymous = registry.CreateHttpClient(authenticated: false))
        using (var response = await anonymous.GetAsync("v2/", cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            var challenge = Assert.Single(response.Headers.WwwAuthenticate);
            Assert.Equal("Basic", challenge.Scheme);
            Assert.Contains("mirrorproxy-test", challenge.Parameter, StringComparison.Ordinal);
        }

        using (var wrong = registry.CreateHttpClient(authenticated: false))
        {
            wrong.DefaultRequestHeaders.Authorization = new RegistryCredentials(AuthRegistryFixture.Credentials.Username, "wrong").ToBasicAuthenticationHeader();
            using var response = await wrong.GetAsync("v2/", cts.Token);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using (var authenticated = registry.CreateHttpClient())
        using (var response = await authenticated.GetAsync("v2/", cts.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // 401s are in the access log too.
        await registry.SyncLogAsync(cts.Token);
        Assert.Contains(registry.GetRequests(), r => r is { Method: "GET", Uri: "/v2/", Status: 401 });
        Assert.Contains(registry.GetRequests(), r => r is { Method: "GET", Uri: "/v2/", Status: 200 });
    }

    [Fact]
    public async Task PushAndPullWithCredentials()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var registry = fixture.Registry;
        var credentials = AuthRegistryFixture.Credentials;

        // Pushing anonymously is refused; with credentials it works.
        var image = OciImageFactory.BuildDockerImage("auth/docker", "v1", "auth-docker");
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => OciImageFactory.PushAsync(registry.BaseUri, image, credentials: null, cts.Token));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        await OciImageFactory.PushAsync(registry, image, cts.Token);

        // HTTP pull.
        var layer = image.Manifests[0].Layers[1];
        using (var anonymous = registry.CreateHttpClient(authenticated: false))
        using (var response = await anonymous.GetAsync($"v2/{image.Repository}/blobs/{layer.Digest}", cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using (var authenticated = registry.CreateHttpClient())
        {
            Assert.Equal(layer.Content, await authenticated.GetByteArrayAsync($"v2/{image.Repository}/blobs/{layer.Digest}", cts.Token));
        }

        // skopeo.
        var reference = "docker://" + image.Reference(registry.HostPort);
        Assert.False((await Skopeo.InspectRawResultAsync(reference, credentials: null, cts.Token)).Succeeded);
        Assert.Equal(image.ManifestBytes, await Skopeo.InspectRawAsync(reference, credentials, cts.Token));
        using var layout = ShortTempDirectory.Create("oci-");
        (await Skopeo.CopyAsync(reference, $"oci:{layout.Path}:v1", all: false, new SkopeoCopyOptions { SourceCredentials = credentials, ExtraArgs = ["--preserve-digests"] }, cts.Token)).EnsureSuccess();
        Assert.Equal(layer.Content, await File.ReadAllBytesAsync(layout.Combine("blobs", "sha256", layer.Hex), cts.Token));

        // containerd (ctr --user) through hosts.toml.
        await using var containerd = await ContainerdDaemon.StartAsync(cts.Token);
        using var hosts = ShortTempDirectory.Create("hosts-");
        ContainerdDaemon.WriteHostsToml(hosts.Path, "auth.test", registry.BaseUri, mirrorOnly: true);
        var ctrReference = $"auth.test/{image.Repository}:{image.Tag}";
        Assert.False((await containerd.PullAsync(ctrReference, hosts.Path, platform: null, cts.Token)).Succeeded);
        (await containerd.PullAsync(ctrReference, hosts.Path, platform: null, credentials, timeout: null, cts.Token)).EnsureSuccess();
        var content = (await containerd.ListContentAsync(cts.Token)).Select(c => c.Digest).ToHashSet();
        Assert.All(image.Blobs, b => Assert.Contains(b.Digest, content));
    }
}
