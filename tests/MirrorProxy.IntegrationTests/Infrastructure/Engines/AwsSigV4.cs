using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>
/// AWS Signature Version 4 for S3 requests signed in the Authorization header: the canonical request, the string to
/// sign and the HMAC-SHA256 key chain. Enough for tests that talk to RGW directly; no presigning, no chunked signing.
/// </summary>
internal static class AwsSigV4
{
    public const string Algorithm = "AWS4-HMAC-SHA256";

    /// <summary>Hex SHA-256 of an empty body.</summary>
    public static readonly string EmptyPayloadHash = HexSha256([]);

    /// <summary><c>yyyyMMddTHHmmssZ</c>, the form of <c>x-amz-date</c>.</summary>
    public static string FormatTimestamp(DateTimeOffset timestamp)
        => timestamp.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);

    public static string HexSha256(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>
    /// The Authorization header value. <paramref name="headers"/> are the headers to sign, host, x-amz-date and
    /// x-amz-content-sha256 among them (their values must be the ones sent); <paramref name="canonicalUri"/> is the path as
    /// sent, already URI-encoded (<see cref="UriEncode"/> with slashes kept).
    /// </summary>
    public static string Authorization(
        string method,
        string canonicalUri,
        IEnumerable<KeyValuePair<string, string>> query,
        IEnumerable<KeyValuePair<string, string>> headers,
        string payloadHash,
        DateTimeOffset timestamp,
        string accessKey,
        string secretKey,
        string region,
        string service = "s3")
    {
        var canonicalQuery = string.Join('&', query
            .Select(p => (Key: UriEncode(p.Key, encodeSlash: true), Value: UriEncode(p.Value, encodeSlash: true)))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ThenBy(p => p.Value, StringComparer.Ordinal)
            .Select(p => p.Key + "=" + p.Value));
        var canonicalHeaders = headers
            .GroupBy(h => h.Key.ToLowerInvariant())
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => (Name: g.Key, Value: string.Join(',', g.Select(h => CollapseSpaces(h.Value.Trim())))))
            .ToArray();
        var signedHeaders = string.Join(';', canonicalHeaders.Select(h => h.Name));
        var canonicalRequest = new StringBuilder()
            .Append(method).Append('\n')
            .Append(canonicalUri).Append('\n')
            .Append(canonicalQuery).Append('\n');
        foreach (var (name, value) in canonicalHeaders)
        {
            canonicalRequest.Append(name).Append(':').Append(value).Append('\n');
        }

        canonicalRequest.Append('\n').Append(signedHeaders).Append('\n').Append(payloadHash);

        var date = timestamp.UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        var scope = $"{date}/{region}/{service}/aws4_request";
        var stringToSign = $"{Algorithm}\n{FormatTimestamp(timestamp)}\n{scope}\n{HexSha256(Encoding.UTF8.GetBytes(canonicalRequest.ToString()))}";

        var key = HMACSHA256.HashData(Encoding.UTF8.GetBytes("AWS4" + secretKey), Encoding.UTF8.GetBytes(date));
        key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(region));
        key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(service));
        key = HMACSHA256.HashData(key, "aws4_request"u8);
        var signature = Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
        return $"{Algorithm} Credential={accessKey}/{scope},SignedHeaders={signedHeaders},Signature={signature}";
    }

    /// <summary>Percent-encodes every byte of the UTF-8 form except A-Z a-z 0-9 - _ . ~ (and '/' unless <paramref name="encodeSlash"/>).</summary>
    public static string UriEncode(string value, bool encodeSlash)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~' || (c == '/' && !encodeSlash))
            {
                builder.Append(c);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static string CollapseSpaces(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            if (c != ' ' || builder.Length == 0 || builder[^1] != ' ')
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
