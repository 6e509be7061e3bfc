using MirrorProxy.Bundles;
using MirrorProxy.Cache;
using MirrorProxy.Metrics;
using MirrorProxy.Protocol;
using MirrorProxy.Readiness;
using MirrorProxy.PullThrough;
using MirrorProxy.Resilience;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;
using MirrorProxy.WarmUp;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace MirrorProxy.Hosting;

internal static class MirrorProxyServiceCollectionExtensions
{
    /// <summary>Registers the mirror's services, bound to the <c>MirrorProxy</c> section and validated at start.</summary>
    public static IServiceCollection AddMirrorProxy(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<MirrorProxyOptions>().Bind(configuration.GetSection(MirrorProxyOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MirrorProxyOptions>, MirrorProxyOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<MirrorMetrics>();
        services.TryAddSingleton<MirrorGauges>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("mirrorproxy"))
            // System.Runtime: the runtime's own meter (GC heap and collections, working set, thread pool), for
            // watching a node's memory next to the mirror's traffic.
            .WithMetrics(metrics => metrics.AddMeter(MirrorMetrics.MeterName, "System.Runtime").AddPrometheusExporter());
        services.TryAddSingleton(static sp => new OfflineMode(sp.GetRequiredService<IOptions<MirrorProxyOptions>>().Value.Offline));

        services.TryAddSingleton(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<MirrorProxyOptions>>().Value;
            var offline = sp.GetRequiredService<OfflineMode>();
            var metrics = sp.GetRequiredService<MirrorMetrics>();
            var time = sp.GetRequiredService<TimeProvider>();
            var loggers = sp.GetRequiredService<ILoggerFactory>();
            var all = options.Upstreams.Select(u => new UpstreamRegistry(u, offline, metrics, time, loggers)).ToList();
            var defaultName = string.IsNullOrEmpty(options.DefaultUpstream) ? options.Upstreams[0].Name : options.DefaultUpstream;
            var defaultUpstream = all.FirstOrDefault(u => u.Names.Contains(defaultName, StringComparer.OrdinalIgnoreCase));
            return new UpstreamRegistrySet(all, defaultUpstream);
        });
        services.TryAddSingleton<UpstreamRouter>();
        services.TryAddSingleton(static sp =>
        {
            var tls = sp.GetRequiredService<IOptions<MirrorProxyOptions>>().Value.Tls;
            return new ServerCertificateProvider(tls.CertificateFile!, tls.KeyFile!, tls.ReloadInterval, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILoggerFactory>().CreateLogger<ServerCertificateProvider>());
        });

        services.TryAddSingleton(static sp => MirrorCache.Open(
            sp.GetRequiredService<IOptions<MirrorProxyOptions>>().Value.Cache,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<MirrorCache>()));
        services.AddHostedService<CacheCheckpointService>();

        services.TryAddSingleton<TagFreshnessPolicy>();
        services.TryAddSingleton<ManifestService>();
        services.TryAddSingleton<BlobService>();
        services.TryAddSingleton<RegistryHandler>();
        services.TryAddSingleton<ImageCheckService>();
        services.TryAddSingleton<PinStore>();
        services.TryAddSingleton<IPinnedContent>(static sp => sp.GetRequiredService<PinStore>());
        services.TryAddSingleton<CacheEvictionService>();
        services.AddHostedService(static sp => sp.GetRequiredService<CacheEvictionService>());
        services.AddBundles();
        return services;
    }
}
