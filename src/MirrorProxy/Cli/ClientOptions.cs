using System.CommandLine;

namespace MirrorProxy.Cli;

/// <summary>Options shared by the commands that talk to a running mirror (check, warm).</summary>
internal static class ClientOptions
{
    public static Option<Uri> Server() => new("--server")
    {
        Required = true,
        Description = "Base URL of the running mirror, e.g. https://mirror.internal:5000.",
        CustomParser = ParseHttpUri,
    };

    /// <summary>Parses an absolute http(s) URL option value, or records an error naming the option.</summary>
    public static Uri? ParseHttpUri(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            return uri;
        }

        result.AddError($"'{text}' is not an http:// or https:// URL");
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

    public static HttpClient CreateHttpClient(Uri server) => new(new SocketsHttpHandler { AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(10) })
    {
        BaseAddress = server,
        Timeout = TimeSpan.FromMinutes(5),
        DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-cli/1.0" } },
    };
}
