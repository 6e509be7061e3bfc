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
using MirrorProxy.Status;
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
        // The configuration is complete before the host is built (ConfigurationLoader): the builder's own sources are
        // dropped. They must not watch for changes either: the default appsettings.json source asks for a watcher on
        // the content root, which on Linux is an inotify watch on every directory beneath the working directory (a
        // cache directory among them), added before the mirror serves.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = Directory.GetCurrentDirectory(),
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
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

            void UseTls(ListenOptions listen)
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
            }

            // Invalid addresses are reported by options validation, with their keys, before anything listens.
            if (ListenAddress.TryParse(options.Listen, out var endPoint, out _))
            {
                Listen(kestrel, endPoint!, UseTls);
            }

            var admin = kestrel.ApplicationServices.GetRequiredService<IOptions<Admin.AdminOptions>>().Value;
            if (admin.Listen is { } adminListen && ListenAddress.TryParse(adminListen, out var adminEndPoint, out _))
            {
                Listen(kestrel, adminEndPoint!, UseTls);
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

    /// <summary>An upstream (or Helm repository) with credentials is private by default: without users, no client can pull from it.</summary>
    private static void WarnAboutUnreachablePrivateUpstreams(IServiceProvider services)
    {
        if (services.GetRequiredService<Auth.ClientAuthenticator>().Enabled)
        {
            return;
        }

        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("MirrorProxy.Auth");
        foreach (var upstream in services.GetRequiredService<Upstream.UpstreamRegistrySet>().All.Where(u => !u.IsPublic))
        {
            logger.LogWarning(new EventId(7020, "PrivateUpstreamWithoutUsers"),
                "Upstream {Upstream} has credentials and is private (Anonymous is false), but MirrorProxy:Auth:HtpasswdFile names no users: no client can pull through it. Configure users, or set its Anonymous to true to share what its credentials can read with every client",
                upstream.Name);
        }

        foreach (var repository in services.GetRequiredService<HelmRepositorySet>().All.Where(r => !r.IsPublic))
        {
            logger.LogWarning(new EventId(7021, "PrivateHelmRepositoryWithoutUsers"),
                "Helm repository {Repository} has credentials and is private (Anonymous is false), but MirrorProxy:Auth:HtpasswdFile names no users: no client can read it through the mirror. Configure users, or set its Anonymous to true to share what its credentials can read with every client",
                repository.Name);
        }
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
        app.MapStatusPage();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapAdminEndpoints();
        _ = app.Services.GetRequiredService<MirrorGauges>();
        WarnAboutUnreachablePrivateUpstreams(app.Services);
        RuntimeReport.Write(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MirrorProxy.Runtime"));
    }
}
