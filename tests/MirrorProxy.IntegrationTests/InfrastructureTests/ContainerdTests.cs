using System.Runtime.InteropServices;
using MirrorProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

[Collection(SharedRegistryCollection.Name)]
public sealed class ContainerdTests(SharedRegistryFixture fixture, ITestOutputHelper output)
{
    private const string RegistryNamespace = "registry.test";

    [Fact]
    public async Task ContainerdPullsAndUnpacksTheMultiArchImageThroughHostsToml()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var registry = fixture.Registry;
        var image = fixture.MultiArch;
        var hostPlatform = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? OciPlatform.LinuxArm64 : OciPlatform.LinuxAmd64;
        var otherPlatform = hostPlatform == OciPlatform.LinuxAmd64 ? OciPlatform.LinuxArm64 : OciPlatform.LinuxAmd64;

        await using var containerd = await ContainerdDaemon.StartAsync(cts.Token);
        using var hosts = ShortTempDirectory.Create("hosts-");
        // The registry itself plays the mirror; the fallback server is unreachable, so everything must come from it.
        ContainerdDaemon.WriteHostsToml(hosts.Path, RegistryNamespace, registry.BaseUri, mirrorOnly: true);
        var reference = $"{RegistryNamespace}/{image.Repository}:{image.Tag}";

        await registry.SyncLogAsync(cts.Token);
        registry.ClearLog();

        // 1) Host platform only.
        var pull = await containerd.PullAsync(reference, hosts.Path, platform: null, cts.Token);
        output.WriteLine(pull.Describe());
        pull.EnsureSuccess();
        Assert.Contains("unpacking " + hostPlatform, pull.StandardOutput, StringComparison.Ordinal);

        output.WriteLine((await containerd.RunCtrAsync(["content", "ls"], cts.Token)).StandardOutput);
        var content = (await containerd.ListContentAsync(cts.Token)).Select(c => c.Digest).ToHashSet();
        var hostManifest = image.GetManifest(hostPlatform);
        var otherManifest = image.GetManifest(otherPlatform);
        Assert.Contains(image.Digest, content);
        Assert.Contains(hostManifest.Digest, content);
        Assert.All(hostManifest.Blobs, b => Assert.Contains(b.Digest, content));
        Assert.DoesNotContain(otherManifest.Layers[2].Digest, content);
        Assert.Equal(hostManifest.Layers[1].Content, await containerd.GetContentAsync(hostManifest.Layers[1].Digest, cts.Token));

        var images = await containerd.ListImagesAsync(cts.Token);
        var pulled = Assert.Single(images, i => i.Reference == reference);
        Assert.Equal(image.Digest, pulled.Digest);

        // containerd talks to a mirror host with ?ns=<registry namespace>; each layer blob was fetched exactly once.
        Assert.True(await registry.CountRequestsAsync("GET", "ns=" + RegistryNamespace, cts.Token) > 0, registry.Log.Tail(40));
        Assert.All(hostManifest.Layers, l => Assert.Equal(1, registry.CountRequests("GET", "/blobs/" + l.Digest)));

        // 2) All platforms: now every blob of the index is in the content store.
        pull = await containerd.PullAsync(reference, hosts.Path, platform: "all", cts.Token);
        output.WriteLine(pull.Describe());
        pull.EnsureSuccess();
        content = (await containerd.ListContentAsync(cts.Token)).Select(c => c.Digest).ToHashSet();
        Assert.All(image.Blobs, b => Assert.Contains(b.Digest, content));
        Assert.All(image.ChildManifests, m => Assert.Contains(m.Digest, content));

        // 3) Remove (with synchronous GC), then an explicit --platform pull of the other platform.
        (await containerd.RemoveImageAsync(reference, cts.Token)).EnsureSuccess();
        Assert.Empty(await containerd.ListContentAsync(cts.Token));

        pull = await containerd.PullAsync(reference, hosts.Path, platform: otherPlatform.ToString(), cts.Token);
        pull.EnsureSuccess();
        content = (await containerd.ListContentAsync(cts.Token)).Select(c => c.Digest).ToHashSet();
        Assert.All(otherManifest.Blobs, b => Assert.Contains(b.Digest, content));
        Assert.DoesNotContain(hostManifest.Layers[2].Digest, content);
    }

    [Fact]
    public void HostsTomlHasTheMirrorAndAnUnreachableFallbackServer()
    {
        using var hosts = ShortTempDirectory.Create("hosts-");
        var path = ContainerdDaemon.WriteHostsToml(hosts.Path, RegistryNamespace, new Uri("http://127.0.0.1:5555/"), mirrorOnly: true);
        Assert.Equal(Path.Combine(hosts.Path, RegistryNamespace, "hosts.toml"), path);
        var toml = File.ReadAllText(path);
        Assert.Contains("server = \"http://127.0.0.1:1\"", toml, StringComparison.Ordinal);
        Assert.Contains("[host.\"http://127.0.0.1:5555\"]", toml, StringComparison.Ordinal);
        Assert.Contains("capabilities = [\"pull\", \"resolve\"]", toml, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ContainerdDaemon.WriteHostsToml(hosts.Path, RegistryNamespace, new Uri("http://127.0.0.1:5555/"), mirrorOnly: false));
    }
}
