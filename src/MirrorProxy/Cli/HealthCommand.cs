using System.CommandLine;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy health</c>: asks a running mirror's <c>/healthz</c>. For container health checks in images
/// without a shell or curl. Exits 0 when healthy, 1 otherwise, 2 on a usage error.
/// </summary>
internal static class HealthCommand
{
    public static Command Create()
    {
        var url = new Option<Uri>("--url")
        {
            Description = "Health endpoint (default http://127.0.0.1:5000/healthz).",
            DefaultValueFactory = _ => new Uri("http://127.0.0.1:5000/healthz"),
            CustomParser = ClientOptions.ParseHttpUri,
        };
        var insecure = new Option<bool>("--insecure") { Description = "Accept any TLS certificate (the check runs on loopback)." };
        var ca = ClientOptions.Ca();
        var command = new Command("health", "Exit 0 when the mirror at --url answers its health check.") { url, insecure, ca };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            using var trust = MirrorTrust.TryCreate(parse.GetValue(ca), out var caError);
            if (trust is null)
            {
                await error.WriteLineAsync("mirrorproxy health: " + caError).ConfigureAwait(false);
                return MirrorProxyCli.UsageError;
            }

            using var handler = trust.CreateHandler();
            handler.ConnectTimeout = TimeSpan.FromSeconds(2);
            if (parse.GetValue(insecure))
            {
                handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
            }

            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
            try
            {
                using var response = await client.GetAsync(parse.GetValue(url), cancellationToken).ConfigureAwait(false);
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                await error.WriteLineAsync(trust.Describe(ex)).ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }
}
