using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

[CollectionDefinition(Name)]
public sealed class SharedRegistryCollection : ICollectionFixture<SharedRegistryFixture>
{
    public const string Name = "Infrastructure: shared test registry";
}

/// <summary>One plain registry with a multi-arch OCI image, a Docker schema 2 image and a Helm chart pushed once.</summary>
public sealed class SharedRegistryFixture : IAsyncLifetime
{
    private TestRegistry? _registry;
    private TestImage? _multiArch;
    private TestImage? _docker;
    private TestImage? _helm;

    internal TestRegistry Registry => _registry ?? throw new InvalidOperationException("Fixture not initialized.");

    internal TestImage MultiArch => _multiArch ?? throw new InvalidOperationException("Fixture not initialized.");

    internal TestImage Docker => _docker ?? throw new InvalidOperationException("Fixture not initialized.");

    internal TestImage Helm => _helm ?? throw new InvalidOperationException("Fixture not initialized.");

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        _registry = await TestRegistry.StartAsync(cancellationToken: cts.Token);
        _multiArch = await OciImageFactory.PushMultiArchImageAsync(_registry, "infra/multiarch", "v1", "infra-multiarch", cts.Token);
        _docker = await OciImageFactory.PushDockerImageAsync(_registry, "infra/docker", "latest", "infra-docker", cts.Token);
        _helm = await OciImageFactory.PushHelmChartAsync(_registry, "infra/charts/mychart", "0.1.0", "infra-helm", cts.Token);
    }

    public async Task DisposeAsync()
    {
        if (_registry is not null)
        {
            await _registry.DisposeAsync();
        }
    }
}
