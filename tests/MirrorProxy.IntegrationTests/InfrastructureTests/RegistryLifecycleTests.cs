using System.Net;
using System.Security.Cryptography;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>Each test gets its own registry: these tests kill, restart and freeze it.</summary>
public sealed class RegistryLifecycleTests
{
    [Fact]
    public async Task StopThenStartAgainKeepsPortAndStorage()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        await using var registry = await TestRegistry.StartAsync(cancellationToken: cts.Token);
        var chart = await OciImageFactory.PushHelmChartAsync(registry, "lifecycle/chart", "1.2.3", "lifecycle", cts.Token);
        var hostPort = registry.HostPort;
        using var client = registry.CreateHttpClient(timeout: TimeSpan.FromSeconds(5));

        await registry.StopAsync(cts.Token);
        Assert.False(registry.IsRunning);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("v2/", cts.Token));

        await registry.StartAgainAsync(cts.Token);
        Assert.True(registry.IsRunning);
        Assert.Equal(hostPort, registry.HostPort);
        var (type, bytes, digest) = await RegistryHttpTests.GetManifestAsync(client, chart.Repository, chart.Tag, cts.Token);
        Assert.Equal(OciMediaTypes.ImageManifest, type);
        Assert.Equal(chart.Digest, digest);
        Assert.Equal(chart.ManifestBytes, bytes);

        // The log survives restarts; ClearLog resets it.
        Assert.Equal(1, await registry.CountRequestsAsync("GET", $"/v2/{chart.Repository}/manifests/{chart.Tag}", cts.Token));
    }

    [Fact]
    public async Task PausedRegistryAcceptsConnectionsButDoesNotAnswerUntilResumed()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var registry = await TestRegistry.StartAsync(cancellationToken: cts.Token);
        using var client = registry.CreateHttpClient(timeout: TimeSpan.FromSeconds(1));

        registry.Pause();
        try
        {
            Assert.True(registry.IsPaused);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetAsync("v2/", cts.Token));
        }
        finally
        {
            registry.Resume();
        }

        Assert.False(registry.IsPaused);
        using var response = await client.GetAsync("v2/", cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task LargeBlobImageRoundTrips()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        await using var registry = await TestRegistry.StartAsync(cancellationToken: cts.Token);
        const long size = 48L * 1024 * 1024;
        var image = await OciImageFactory.PushLargeBlobImageAsync(registry, "lifecycle/large", "v1", "large", size, cts.Token);

        var layer = Assert.Single(image.Manifests[0].Layers);
        Assert.InRange(layer.Size, size, size + (size / 100));

        using var client = registry.CreateHttpClient();
        await using var stream = await client.GetStreamAsync($"v2/{image.Repository}/blobs/{layer.Digest}", cts.Token);
        var hash = await SHA256.HashDataAsync(stream, cts.Token);
        Assert.Equal(layer.Digest, "sha256:" + Convert.ToHexStringLower(hash));
    }
}
