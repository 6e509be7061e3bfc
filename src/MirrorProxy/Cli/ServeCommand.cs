using System.CommandLine;
using MirrorProxy.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Cli;

/// <summary><c>mirrorproxy serve</c>: runs the mirror until stopped.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "JSON configuration file, layered over appsettings.json and the embedded defaults." };
        var listen = new Option<string?>("--listen") { Description = "Address to listen on: HOST:PORT, or :PORT for every interface (default :5000)." };
        var cache = new Option<string?>("--cache") { Description = "Cache directory (default ./mirrorproxy-cache)." };
        var upstream = new Option<string[]>("--upstream")
        {
            Description = "NS=URL, repeatable. Replaces the configured upstreams; the first is the default upstream.",
            AllowMultipleArgumentsPerToken = false,
        };
        var tagTtl = new Option<int?>("--tag-ttl") { Description = "Seconds a cached tag is served without asking upstream (0 = always revalidate)." };
        var offline = new Option<bool>("--offline") { Description = "Never dial an upstream: serve from the cache only (switchable at run time: PUT /admin/offline?enabled=false)." };

        var logFormat = new Option<string?>("--log-format") { Description = "Console log format: text (default) or json." };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var accessLog = new Option<bool>("--access-log") { Description = "Log one line per request (off by default)." };

        var maxCacheSize = new Option<string?>("--max-cache-size") { Description = "Size budget for the cache, e.g. 300MB or 20GiB; unpinned content is evicted to stay within it." };

        var tlsCert = new Option<string?>("--tls-cert") { Description = "PEM certificate (with chain) to serve TLS; re-read when it changes." };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key for --tls-cert." };
        var upstreamCa = new Option<string[]>("--upstream-ca") { Description = "NS=FILE, repeatable: a PEM CA bundle to trust for the upstream named NS." };
        var helmRepo = new Option<string[]>("--helm-repo") { Description = "NAME=URL, repeatable: a classic Helm repository served at /helm/NAME/. Replaces the configured ones." };

        var command = new Command("serve", "Run the pull-through registry mirror.")
        {
            config, listen, cache, upstream, tagTtl, offline, logFormat, accessLog, maxCacheSize, tlsCert, tlsKey, upstreamCa, helmRepo,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var flags = new ServeFlags
            {
                ConfigFile = parse.GetValue(config),
                Listen = parse.GetValue(listen),
                CacheDirectory = parse.GetValue(cache),
                Upstreams = parse.GetValue(upstream) ?? [],
                TagTtlSeconds = parse.GetValue(tagTtl),
                Offline = parse.GetValue(offline),
                LogFormat = parse.GetValue(logFormat),
                AccessLog = parse.GetValue(accessLog),
                MaxCacheSize = parse.GetValue(maxCacheSize),
                TlsCertificate = parse.GetValue(tlsCert),
                TlsKey = parse.GetValue(tlsKey),
                UpstreamCas = parse.GetValue(upstreamCa) ?? [],
                HelmRepositories = parse.GetValue(helmRepo) ?? [],
            };
            return await RunAsync(flags, parse.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(ServeFlags flags, TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            var configuration = ConfigurationLoader.Load(flags);
            await using var app = MirrorProxyHost.Build(configuration);
            await app.RunAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (ConfigurationLoadException ex)
        {
            await error.WriteLineAsync("mirrorproxy: " + ex.Message).ConfigureAwait(false);
            return 2;
        }
        catch (OptionsValidationException ex)
        {
            foreach (var failure in ex.Failures)
            {
                await error.WriteLineAsync("mirrorproxy: configuration error: " + failure).ConfigureAwait(false);
            }

            return 2;
        }
        catch (InvalidOperationException ex) when (ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            // The binder names the key: "Failed to convert configuration value at 'MirrorProxy:TagTtl' to type …".
            await error.WriteLineAsync("mirrorproxy: configuration error: " + ex.Message).ConfigureAwait(false);
            return 2;
        }
        catch (IOException ex) when (ex.InnerException is System.Net.Sockets.SocketException || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            await error.WriteLineAsync("mirrorproxy: cannot listen: " + ex.Message).ConfigureAwait(false);
            return 1;
        }
        catch (UnauthorizedAccessException ex)
        {
            await error.WriteLineAsync("mirrorproxy: cache directory not writable: " + ex.Message).ConfigureAwait(false);
            return 1;
        }
    }
}
