using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.Storage.S3;

/// <summary>
/// AWS Signature Version 4 for S3, in the Authorization header. Signs the host, every <c>x-amz-*</c> header and the
/// conditional, range and content-type headers the client sets. The payload hash is the SHA-256 of the body, which
/// for content-addressed blobs is their digest: the store then checks the bytes it receives against it.
/// </summary>
internal sealed class S3Signer
{
    /// <summary>The payload hash of an empty body.</summary>
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// <summary>For a body whose hash is not known in advance (the store does not check it).</summary>
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    private const string Algorithm = "AWS4-HMAC-SHA256";
    private const string Service = "s3";

    private readonly string _accessKey;
    private readonly byte[] _secret;
    private readonly string _region;
    private readonly Lock _gate = new();
    private (string Date, byte[] Key) _signingKey;

    public S3Signer(string accessKey, string secretKey, string region)
    {
        _accessKey = accessKey;
        _secret = Encoding.UTF8.GetBytes("AWS4" + secretKey);
        _region = region;
    }

    /// <summary>Adds <c>x-amz-date</c>, <c>x-amz-content-sha256</c> and <c>Authorization</c> to <paramref name="request"/>.</summary>
    public void Sign(HttpRequestMessage request, string payloadHash, DateTimeOffset now)
    {
        var amzDate = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var date = amzDate[..8];
        request.Headers.Remove("x-amz-date");
        request.Headers.Remove("x-amz-content-sha256");
        request.Headers.TryAddWithoutValidation("x-amz-date", amzDate);
        request.Headers.TryAddWithoutValidation("x-amz-content-sha256", payloadHash);

        var uri = request.RequestUri!;
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["host"] = uri.IsDefaultPort ? uri.Host : uri.Authority,
        };
        Collect(request.Headers, headers);
        if (request.Content is { } content)
        {
            Collect(content.Headers, headers);
        }

        var signedHeaders = string.Join(';', headers.Keys);
        var canonical = new StringBuilder(256)
            .Append(request.Method.Method).Append('\n')
            .Append(uri.AbsolutePath).Append('\n')
            .Append(CanonicalQuery(uri.Query)).Append('\n');
        foreach (var (name, value) in headers)
        {
            canonical.Append(name).Append(':').Append(value).Append('\n');
        }

        canonical.Append('\n').Append(signedHeaders).Append('\n').Append(payloadHash);

        var scope = $"{date}/{_region}/{Service}/aws4_request";
        var stringToSign = $"{Algorithm}\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical.ToString())))}";
        var signature = Hex(HMACSHA256.HashData(SigningKey(date), Encoding.UTF8.GetBytes(stringToSign)));
        request.Headers.TryAddWithoutValidation("Authorization", $"{Algorithm} Credential={_accessKey}/{scope},SignedHeaders={signedHeaders},Signature={signature}");
    }

    /// <summary>
    /// Encodes a key for the path: every byte but the unreserved characters and <c>/</c> percent-encoded, as the
    /// canonical request needs it (the URI is then sent as written).
    /// </summary>
    public static string EncodePath(string key) => Encode(key, keepSlash: true);

    public static string EncodeQueryValue(string value) => Encode(value, keepSlash: false);

    private static string Encode(string value, bool keepSlash)
    {
        var builder = new StringBuilder(value.Length + 16);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in value.EnumerateRunes())
        {
            var c = rune.Value;
            if (c is >= 'A' and <= 'Z' or >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.' or '~' || (keepSlash && c == '/'))
            {
                builder.Append((char)c);
                continue;
            }

            var length = rune.EncodeToUtf8(utf8);
            foreach (var b in utf8[..length])
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static void Collect(HttpHeaders source, SortedDictionary<string, string> headers)
    {
        foreach (var (name, values) in source.NonValidated)
        {
            var lower = name.ToLowerInvariant();
            if (lower.StartsWith("x-amz-", StringComparison.Ordinal) || lower is "range" or "if-none-match" or "if-match" or "content-type" or "content-md5")
            {
                headers[lower] = string.Join(',', values.Select(v => v.Trim()));
            }
        }
    }

    /// <summary>The query sorted by name, each name and value encoded (it is built encoded already; sorting is what is left).</summary>
    private static string CanonicalQuery(string query)
    {
        if (query.Length <= 1)
        {
            return "";
        }

        var pairs = query[1..].Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Contains('=') ? p : p + "=")
            .Order(StringComparer.Ordinal);
        return string.Join('&', pairs);
    }

    private byte[] SigningKey(string date)
    {
        lock (_gate)
        {
            if (_signingKey.Date == date)
            {
                return _signingKey.Key;
            }

            var key = HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes(date));
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(_region));
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(Service));
            key = HMACSHA256.HashData(key, "aws4_request"u8);
            _signingKey = (date, key);
            return key;
        }
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);
}
