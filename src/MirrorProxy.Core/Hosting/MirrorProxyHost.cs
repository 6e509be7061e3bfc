using System.Net;
using System.Net.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Options;
using MirrorProxy.Admin;
using MirrorProxy.Helm;
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
        if (string.Equals(configuration[$"{ServerOptions.SectionName}:LogFormat"], "json", StringComparison.OrdinalIgnoreCase))
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
            var options = kestrel.ApplicationServices.GetRequiredService<IOptions<ServerOptions>>().Value;

            // Invalid addresses are reported by options validation, with their keys, before anything listens.
            if (ListenAddress.TryParse(options.Listen, out var endPoint, out _))
            {
                Listen(kestrel, endPoint!, listen =>
                {
                    if (options.Tls.Enabled && options.Tls.CertificateFile is not null && options.Tls.KeyFile is not null)
                    {
                        var certificates = kestrel.ApplicationServices.GetRequiredService<ServerCertificateProvider>();
                        listen.Protocols = HttpProtocols.Http1AndHttp2;
                        listen.UseHttps(new TlsHandshakeCallbackOptions
                        {
                            OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
                            {
                                ServerCertificateContext = certificates.Current,
                                ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
                            }),
                        });
                    }
                });
            }

            if (options.Tls.Enabled && options.PlainListen is { } plain && ListenAddress.TryParse(plain, out var plainEndPoint, out _))
            {
                Listen(kestrel, plainEndPoint!, _ => { });
            }
        });

        builder.Services.AddMirrorProxy(configuration);
        var app = builder.Build();
        app.MapMirrorProxy();
        return app;
    }

    private static void Listen(KestrelServerOptions kestrel, IPEndPoint endPoint, Action<ListenOptions> configure)
    {
        if (endPoint.Address.Equals(IPAddress.IPv6Any))
        {
            kestrel.ListenAnyIP(endPoint.Port, configure);
        }
        else
        {
            kestrel.Listen(endPoint, configure);
        }
    }

    public static void MapMirrorProxy(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<ServerOptions>>().Value.AccessLog)
        {
            app.UseMiddleware<AccessLogMiddleware>();
        }

        var handler = app.Services.GetRequiredService<RegistryHandler>();
        app.Map("/v2", branch => branch.Run(handler.HandleAsync));
        app.MapHelmRepositories();
        app.MapHealthEndpoints();
        app.MapStatusEndpoints();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapAdminEndpoints();
        _ = app.Services.GetRequiredService<MirrorGauges>();
        RuntimeReport.Write(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MirrorProxy.Runtime"));
    }
}
