using System.Globalization;
using System.Text.RegularExpressions;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>One completed HTTP request, parsed from distribution's access log.</summary>
internal sealed record RegistryRequest(DateTimeOffset Timestamp, string Method, string Uri, int Status, long? ResponseBytes, string UserAgent)
{
    public override string ToString() => $"{Method} {Uri} -> {Status}";
}

internal static partial class RegistryAccessLog
{
    /// <summary>
    /// Parses one line of distribution 2.8's access log (written to stdout, one line per completed request,
    /// gorilla/handlers combined log format), e.g.
    /// <c>127.0.0.1 - - [23/Nov/2026:23:07:45 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"</c>.
    /// </summary>
    public static bool TryParse(string line, out RegistryRequest request)
    {
        var match = AccessLogRegex().Match(line);
        if (!match.Success)
        {
            request = null!;
            return false;
        }

        // "23/Nov/2026:23:07:45 +0000": .NET's zzz wants "+00:00".
        var timeText = match.Groups["time"].Value;
        if (timeText.Length > 5 && timeText[^5] is '+' or '-')
        {
            timeText = timeText[..^2] + ":" + timeText[^2..];
        }

        var timestamp = DateTimeOffset.TryParseExact(
            timeText,
            "dd/MMM/yyyy:HH:mm:ss zzz",
            CultureInfo.InvariantCulture,
            DateTimeStyles.None,
            out var parsed)
            ? parsed
            : DateTimeOffset.MinValue;
        var sizeText = match.Groups["size"].Value;
        request = new RegistryRequest(
            timestamp,
            match.Groups["method"].Value,
            match.Groups["uri"].Value,
            int.Parse(match.Groups["status"].Value, CultureInfo.InvariantCulture),
            sizeText == "-" ? null : long.Parse(sizeText, CultureInfo.InvariantCulture),
            match.Groups["ua"].Value);
        return true;
    }

    [GeneratedRegex("""^\S+ \S+ \S+ \[(?<time>[^\]]+)\] "(?<method>[A-Z]+) (?<uri>\S+) HTTP/[0-9.]+" (?<status>\d{3}) (?<size>\d+|-) "[^"]*" "(?<ua>[^"]*)"\s*$""", RegexOptions.CultureInvariant)]
    private static partial Regex AccessLogRegex();
}
