using System.Net;
using MirrorProxy.Admin;
using MirrorProxy.Metrics;
using MirrorProxy.Readiness;
using MirrorProxy.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Hosting;

/// <summary>Builds the mirror's web application from a finished configuration (production and tests alike).</summary>
internal static class MirrorProxyHost
{
    public static WebApplication Build(IConfiguration configuration, Action<ILoggingBuilder>? configureLogging = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = Directory.GetCurrentDirectory() });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddConfiguration(configuration);

        builder.Logging.ClearProviders();
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        if (string.Equals(configuration[$"{MirrorProxyOptions.SectionName}:LogFormat"], "json", StringComparison.OrdinalIgnoreCase))
        {
            builder.Logging.AddJsonConsole(json =>
            {
                json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                json.UseUtcTimestamp = true;
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                console.UseUtcTimestamp = true;
            });
        }
        configureLogging?.Invoke(builder.Logging);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // An invalid address is reported by options validation, with its key, before anything listens.
            if (ListenAddress.TryParse(configuration[$"{MirrorProxyOptions.SectionName}:Listen"] ?? new MirrorProxyOptions().Listen, out var endPoint, out _))
            {
                if (endPoint!.Address.Equals(IPAddress.IPv6Any))
                {
                    kestrel.ListenAnyIP(endPoint.Port);
                }
                else
                {
                    kestrel.Listen(endPoint);
                }
            }
        });

        builder.Services.AddMirrorProxy(configuration);
        var app = builder.Build();
        app.MapMirrorProxy();
        return app;
    }

    public static void MapMirrorProxy(this WebApplication app)
    {
        if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<MirrorProxyOptions>>().Value.AccessLog)
        {
            app.UseMiddleware<AccessLogMiddleware>();
        }

        var handler = app.Services.GetRequiredService<RegistryHandler>();
        app.Map("/v2", branch => branch.Run(handler.HandleAsync));
        app.MapHealthEndpoints();
        app.MapStatusEndpoints();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapAdminEndpoints();
        _ = app.Services.GetRequiredService<MirrorGauges>();
    }
}
