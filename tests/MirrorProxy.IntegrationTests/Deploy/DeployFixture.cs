using System.Diagnostics;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// What running deploy/ needs besides a cluster: the mirror's image (the program published as the Dockerfile
/// publishes it: Native AOT for this machine, or the build <c>MIRRORPROXY_TEST_PROGRAM</c> names), and real
/// upstreams (CNCF distribution): one anonymous, standing in for Docker Hub, and one behind basic auth with the
/// same images under <c>dockerhub-proxy/</c>, standing in for a Harbor proxy-cache project.
/// </summary>
public sealed class DeployFixture : IAsyncLifetime
{
    internal static readonly RegistryCredentials Robot = new("robot$mirrorproxy", "robot-secret-1");

    private readonly TempDirectory _publish = new("mirrorproxy-image");

    internal ContainerImage Image { get; private set; } = null!;

    internal TimeSpan PublishTime { get; private set; }

    internal TestRegistry Upstream { get; private set; } = null!;

    internal TestRegistry Harbor { get; private set; } = null!;

    /// <summary>The images the warm-up job is given, as a cluster's pods name them.</summary>
    internal IReadOnlyList<string> ClusterImages { get; } = ["docker.io/team/app:1.0", "docker.io/library/busybox:1.36"];

    public async Task InitializeAsync()
    {
        // A fixture whose initialisation fails is not disposed by xunit: clean up here.
        try
        {
            var watch = Stopwatch.StartNew();
            var program = Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } given ? given : await PublishAsync();
            PublishTime = watch.Elapsed;
            Image = ContainerImage.FromDockerfile(Path.Combine(RepositoryRoot.Path, "Dockerfile"), new Dictionary<string, string> { ["/out/mirrorproxy"] = program });
            Upstream = await TestRegistry.StartAsync();
            Harbor = await TestRegistry.StartAsync(new TestRegistryOptions { BasicAuth = Robot });
            await OciImageFactory.PushMultiArchImageAsync(Upstream, "team/app", "1.0", "deploy-app");
            await OciImageFactory.PushDockerImageAsync(Upstream, "library/busybox", "1.36", "deploy-busybox");
            await OciImageFactory.PushMultiArchImageAsync(Harbor, "dockerhub-proxy/team/app", "1.0", "deploy-app");
            await OciImageFactory.PushDockerImageAsync(Harbor, "dockerhub-proxy/library/busybox", "1.36", "deploy-busybox");
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>The Dockerfile's build: <c>dotnet publish -p:PublishAot=true</c>, for this machine's architecture.</summary>
    private async Task<string> PublishAsync()
    {
        var rid = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        (await ProcessRunner.RunAsync("dotnet",
            ["publish", Path.Combine(RepositoryRoot.Path, "src", "MirrorProxy"), "-c", "Release", "-r", rid, "-p:PublishAot=true", "-o", _publish.Path, "-nologo"],
            TimeSpan.FromMinutes(15), CancellationToken.None)).EnsureSuccess();
        return Path.Combine(_publish.Path, "mirrorproxy");
    }

    public async Task DisposeAsync()
    {
        if (Upstream is not null)
        {
            await Upstream.DisposeAsync();
        }

        if (Harbor is not null)
        {
            await Harbor.DisposeAsync();
        }

        _publish.Dispose();
    }
}
