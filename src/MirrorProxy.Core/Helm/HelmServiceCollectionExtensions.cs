using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Common;
using MirrorProxy.Metrics;
using MirrorProxy.Resilience;

namespace MirrorProxy.Helm;

internal static class HelmServiceCollectionExtensions
{
    /// <summary>The classic Helm repositories: options bound from the <c>MirrorProxy</c> section and validated at start, clients, services.</summary>
    public static IServiceCollection AddHelmRepositories(this IServiceCollection services, IConfigurationSection root)
    {
        services.AddOptions<HelmOptions>().Bind(root).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HelmOptions>, HelmOptionsValidator>());
        services.TryAddSingleton(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<HelmOptions>>().Value;
            var offline = sp.GetRequiredService<OfflineMode>();
            var background = sp.GetRequiredService<BackgroundWork>();
            var metrics = sp.GetRequiredService<MirrorMetrics>();
            var time = sp.GetRequiredService<TimeProvider>();
            var loggers = sp.GetRequiredService<ILoggerFactory>();
            return new HelmRepositorySet(options.HelmRepositories.Select(r => new HelmRepository(r, offline, background, metrics, time, loggers)));
        });
        services.TryAddSingleton<HelmMetrics>();
        services.TryAddSingleton<HelmIndexService>();
        services.TryAddSingleton<HelmChartService>();
        services.TryAddSingleton<HelmHandler>();
        services.TryAddSingleton<HelmChartCheck>();
        return services;
    }

    public static void MapHelmRepositories(this WebApplication app)
    {
        var handler = app.Services.GetRequiredService<HelmHandler>();
        app.Map("/helm", branch => branch.Run(handler.HandleAsync));
    }
}
