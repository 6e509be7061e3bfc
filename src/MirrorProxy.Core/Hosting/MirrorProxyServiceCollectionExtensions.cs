using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Admin;
using MirrorProxy.Auth;
using MirrorProxy.Bundles;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Helm;
using MirrorProxy.Coordination;
using MirrorProxy.Metrics;
using MirrorProxy.Protocol;
using MirrorProxy.PullThrough;
using MirrorProxy.Readiness;
using MirrorProxy.Resilience;
using MirrorProxy.Routing;
using MirrorProxy.Status;
using MirrorProxy.Storage;
using MirrorProxy.Storage.S3;
using MirrorProxy.Upstream;
using MirrorProxy.WarmUp;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace MirrorProxy.Hosting;

internal static class MirrorProxyServiceCollectionExtensions
{
    /// <summary>
    /// Registers the mirror's services. Each feature binds its own options from its part of the <c>MirrorProxy</c>
    /// section and validates them at start, beside the feature.
    /// </summary>
    public static IServiceCollection AddMirrorProxy(this IServiceCollection services, IConfiguration configuration)
    {
        // Spelled out per feature (not a generic helper): the configuration binder's source generator, which the
        // Native AOT build needs, binds only calls it can see with their concrete types.
        var root = configuration.GetSection(ServerOptions.SectionName);
        services.AddOptions<ServerOptions>().Bind(root).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServerOptions>, ServerOptionsValidator>());
        services.AddOptions<UpstreamSetOptions>().Bind(root).ValidateOnStart().PostConfigure(options =>
        {
            // MinBlobThroughput is a size: read as text (see ByteSizeBinding).
            for (var i = 0; i < options.Upstreams.Count; i++)
            {
                if (ByteSizeBinding.Read<UpstreamSetOptions>(root, $"Upstreams:{i}:{nameof(UpstreamOptions.MinBlobThroughput)}") is { } size)
                {
                    options.Upstreams[i].MinBlobThroughput = size;
                }
            }
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UpstreamSetOptions>, UpstreamSetOptionsValidator>());
        services.AddOptions<PullThroughOptions>().Bind(root).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PullThroughOptions>, PullThroughOptionsValidator>());
        var cache = configuration.GetSection(CacheOptions.SectionName);
        services.AddOptions<CacheOptions>().Bind(cache).ValidateOnStart().BindSizes(cache,
            (nameof(CacheOptions.MemorySize), static (o, v) => o.MemorySize = v),
            (nameof(CacheOptions.MemoryMaxObjectSize), static (o, v) => o.MemoryMaxObjectSize = v),
            (nameof(CacheOptions.MaxSize), static (o, v) => o.MaxSize = v),
            (nameof(CacheOptions.MaxBlobSize), static (o, v) => o.MaxBlobSize = v),
            (nameof(CacheOptions.FreeDiskWatermark), static (o, v) => o.FreeDiskWatermark = v),
            (nameof(CacheOptions.MinFreeDisk), static (o, v) => o.MinFreeDisk = v),
            (nameof(CacheOptions.IndexCompactionMinimum), static (o, v) => o.IndexCompactionMinimum = v),
            (nameof(CacheOptions.ScrubRate), static (o, v) => o.ScrubRate = v));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CacheOptions>, CacheOptionsValidator>());
        services.AddOptions<AdminOptions>().Bind(configuration.GetSection(AdminOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>());
        services.AddOptions<AuthOptions>().Bind(configuration.GetSection(AuthOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>());
        services.AddOptions<OfflineOptions>().Bind(root);
        services.AddOptions<ReadinessOptions>().Bind(root);

        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<MirrorMetrics>();
        services.TryAddSingleton<MirrorGauges>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("mirrorproxy"))
            // System.Runtime: the runtime's own meter (GC heap and collections, working set, thread pool), for
            // watching a node's memory next to the mirror's traffic.
            .WithMetrics(metrics => metrics.AddMeter(MirrorMetrics.MeterName, "System.Runtime").AddPrometheusExporter());

        // Background work is stopped (cancelled and awaited) before the index takes its final checkpoint: hosted
        // services stop in the reverse of their registration order.
        services.TryAddSingleton<BackgroundWork>();
        services.TryAddSingleton(static sp => new OfflineMode(sp.GetRequiredService<IOptions<OfflineOptions>>().Value.Offline));

        services.TryAddSingleton(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<UpstreamSetOptions>>().Value;
            var offline = sp.GetRequiredService<OfflineMode>();
            var background = sp.GetRequiredService<BackgroundWork>();
            var metrics = sp.GetRequiredService<MirrorMetrics>();
            var time = sp.GetRequiredService<TimeProvider>();
            var loggers = sp.GetRequiredService<ILoggerFactory>();
            var all = options.Upstreams.Select(u => new UpstreamRegistry(u, offline, background, metrics, time, loggers)).ToList();
            var defaultName = string.IsNullOrEmpty(options.DefaultUpstream) ? options.Upstreams[0].Name : options.DefaultUpstream;
            var defaultUpstream = all.FirstOrDefault(u => u.Names.Contains(defaultName, StringComparer.OrdinalIgnoreCase));
            return new UpstreamRegistrySet(all, defaultUpstream);
        });
        services.TryAddSingleton<UpstreamRouter>();
        services.TryAddSingleton<AdminToken>();
        services.TryAddSingleton<ClientAuthenticator>();
        services.TryAddSingleton<AccessPolicy>();
        services.TryAddSingleton(static sp =>
        {
            var tls = sp.GetRequiredService<IOptions<ServerOptions>>().Value.Tls;
            return new ServerCertificateProvider(tls.CertificateFile!, tls.KeyFile!, tls.ReloadInterval, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILoggerFactory>().CreateLogger<ServerCertificateProvider>());
        });

        services.AddCacheStorage(configuration);
        services.AddCoordination(configuration);
        services.TryAddSingleton<TagFreshnessPolicy>();
        services.TryAddSingleton<ManifestService>();
        services.TryAddSingleton<BlobService>();
        services.TryAddSingleton<ListingService>();
        services.TryAddSingleton<RegistryHandler>();
        services.AddMirrorProxyStatus();
        services.TryAddSingleton<ImageCheckService>();
        services.AddHelmRepositories(root);
        services.AddHostedService(static sp => sp.GetRequiredService<BackgroundWork>());
        services.AddBundles();
        return services;
    }

    /// <summary>Replicas' coordination through a Redis-protocol store, or none for a single mirror.</summary>
    private static void AddCoordination(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<CoordinationOptions>().Bind(configuration.GetSection(CoordinationOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CoordinationOptions>, CoordinationOptionsValidator>());
        services.TryAddSingleton<ICoordination>(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<CoordinationOptions>>().Value;
            if (!options.IsEnabled)
            {
                return new LocalCoordination();
            }

            var coordination = new RedisCoordination(options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<MirrorMetrics>(),
                sp.GetRequiredService<ILogger<RedisCoordination>>());
            // Uses of content feed the shared store's least-recently-used order.
            sp.GetRequiredService<MirrorCache>().Used += coordination.RecordAccess;
            return coordination;
        });
        services.TryAddSingleton<DownloadCoordinator>();
    }

    /// <summary>The cache (in files, indexed by FASTER) and its background upkeep; with an S3 store configured, the files are a read cache of it.</summary>
    private static void AddCacheStorage(this IServiceCollection services, IConfiguration configuration)
    {
        var s3 = configuration.GetSection(S3Options.SectionName);
        services.AddOptions<S3Options>().Bind(s3).ValidateOnStart().BindSizes(s3, (nameof(S3Options.MaxSize), static (o, v) => o.MaxSize = v));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<S3Options>, S3OptionsValidator>());
        if (configuration.GetSection(S3Options.SectionName).Get<S3Options>() is { IsEnabled: true })
        {
            services.TryAddSingleton(static sp => SharedStorage.Open(
                sp.GetRequiredService<IOptions<S3Options>>().Value, sp.GetRequiredService<IOptions<CacheOptions>>().Value, sp.GetRequiredService<BackgroundWork>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>()));
        }

        services.TryAddSingleton(static sp => FileCache.Open(
            sp.GetRequiredService<IOptions<CacheOptions>>().Value, sp.GetRequiredService<MirrorMetrics>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>(), sp.GetService<SharedTier>()));
        services.TryAddSingleton(static sp => sp.GetRequiredService<MirrorCache>().Store);
        services.TryAddSingleton(static sp => sp.GetRequiredService<MirrorCache>().Metadata);
        services.TryAddSingleton<CacheBudget>();
        services.TryAddSingleton<PinStore>();
        services.TryAddSingleton<IPinnedContent>(static sp => sp.GetRequiredService<PinStore>());
        services.TryAddSingleton<IndexMaintenanceService>();
        services.TryAddSingleton<EvictionService>();
        services.TryAddSingleton<ScrubService>();
        services.AddHostedService(static sp => sp.GetRequiredService<IndexMaintenanceService>());
        services.AddHostedService(static sp => sp.GetRequiredService<PinStore>());
        services.AddHostedService(static sp => sp.GetRequiredService<EvictionService>());
        services.AddHostedService(static sp => sp.GetRequiredService<ScrubService>());
        services.TryAddSingleton<SharedEvictionService>();
        services.AddHostedService(static sp => sp.GetRequiredService<SharedEvictionService>());
    }
}
