using System.CommandLine;

namespace MirrorProxy.Cli;

/// <summary>Options shared by the commands that talk to a running mirror (check, warm).</summary>
internal static class ClientOptions
{
    public static Option<Uri> Server() => new("--server")
    {
        Required = true,
        Description = "The running mirror: https://HOST:PORT or http://HOST:PORT. A bare HOST:PORT means http://HOST:PORT.",
        CustomParser = ParseServer,
    };

    public static Option<string?> Ca() => new("--ca")
    {
        Description = "PEM file of the CA that signed the mirror's certificate (e.g. ca.crt of the Secret mirrorproxy-tls), trusted besides the system's CAs.",
    };

    public static Option<bool> Strict() => new("--strict")
    {
        Description = "Fail (exit 1) also for images of registries the mirror does not serve; without it they are listed as not mirrored.",
    };

    /// <summary>
    /// The mirror's base URL: an absolute http(s) URL, or a bare <c>HOST:PORT</c> taken as <c>http://HOST:PORT</c>
    /// (the mirror's default listener is plain HTTP). Anything else is a usage error naming the option.
    /// </summary>
    public static Uri? ParseServer(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (!text.Contains("://", StringComparison.Ordinal) && Uri.TryCreate("http://" + text, UriKind.Absolute, out var bare)
            && bare.AbsolutePath == "/" && !bare.IsDefaultPort && bare.Host.Length > 0 && bare.Query.Length == 0 && bare.UserInfo.Length == 0)
        {
            return bare;
        }

        return ParseHttpUri(result);
    }

    /// <summary>Parses an absolute http(s) URL option value, or records an error naming the option.</summary>
    public static Uri? ParseHttpUri(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            return uri;
        }

        var option = (result.Parent as System.CommandLine.Parsing.OptionResult)?.Option.Name ?? "the URL";
        result.AddError($"{option}: '{text}' is not an http:// or https:// URL (nor HOST:PORT)");
        return null;
    }

    public static Option<string> Images() => new("--images")
    {
        Required = true,
        Description = "File of image references (whitespace-separated, as kubectl get pods -A -o jsonpath='{..image}' prints), or - for standard input.",
    };

    public static Option<string?> Platform() => new("--platform")
    {
        Description = "Platforms of multi-platform images: linux/amd64,linux/arm64 or all (default: this machine's platform).",
    };

    /// <summary>Reads the image list from a file or standard input; null (with the reason written) when it cannot.</summary>
    public static async Task<string?> ReadImagesAsync(string source, TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            return source == "-"
                ? await Console.In.ReadToEndAsync(cancellationToken).ConfigureAwait(false)
                : await File.ReadAllTextAsync(source, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"--images: cannot read '{source}': {ex.Message}").ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>
    /// A client for the mirror's admin and /v2 endpoints with no overall timeout, carrying the admin token of
    /// <paramref name="tokenFile"/> (or of the environment) when there is one.
    /// </summary>
    public static async Task<HttpClient> CreateAdminClientAsync(Uri server, MirrorTrust trust, string? tokenFile, CancellationToken cancellationToken)
    {
        var token = tokenFile is { } file
            ? (await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false)).Trim()
            : Environment.GetEnvironmentVariable(WarmCommand.TokenEnvironmentVariable);
        var http = CreateHttpClient(server, trust);
        http.Timeout = Timeout.InfiniteTimeSpan;
        if (!string.IsNullOrEmpty(token))
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        return http;
    }

    public static HttpClient CreateHttpClient(Uri server, MirrorTrust trust) => new(trust.CreateHandler())
    {
        BaseAddress = server,
        Timeout = TimeSpan.FromMinutes(5),
        DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-cli/1.0" } },
    };
}
