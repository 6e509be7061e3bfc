using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Common;
using MirrorProxy.Metrics;
using MirrorProxy.Resilience;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;

namespace MirrorProxy.Benchmarks.Routing;

/// <summary>Choosing the upstream, done on every request.</summary>
[MemoryDiagnoser]
public class RoutingBenchmarks
{
    private UpstreamRouter _router = null!;
    private UpstreamRegistrySet _upstreams = null!;
    private readonly BackgroundWork _background = new(NullLogger<BackgroundWork>.Instance);

    [GlobalSetup]
    public void Setup()
    {
        var metrics = new MirrorMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        var offline = new OfflineMode(false);
        var all = new[] { "docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "mcr.microsoft.com" }
            .Select(name => new UpstreamRegistry(new UpstreamOptions { Name = name, Url = "https://" + name }, offline, _background, metrics, TimeProvider.System, NullLoggerFactory.Instance))
            .ToList();
        _upstreams = new UpstreamRegistrySet(all, all[0]);
        _router = new UpstreamRouter(_upstreams);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _upstreams.Dispose();
        _background.Dispose();
    }

    [Benchmark]
    public bool ByNamespace() => _router.Route("library/nginx", "docker.io").IsRouted;

    [Benchmark]
    public bool ByPathPrefix() => _router.Route("ghcr.io/org/app", null).IsRouted;

    [Benchmark]
    public bool ToDefault() => _router.Route("nginx", null).IsRouted;
}
