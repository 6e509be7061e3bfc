using System.Net;
using System.Text;
using System.Xml.Linq;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>An S3 response read whole: status, headers (response and content, case-insensitive) and body.</summary>
internal sealed class S3Response
{
    public S3Response(HttpStatusCode status, IReadOnlyDictionary<string, string> headers, byte[] body)
    {
        Status = status;
        Headers = headers;
        Body = body;
    }

    public HttpStatusCode Status { get; }

    public IReadOnlyDictionary<string, string> Headers { get; }

    public byte[] Body { get; }

    public string BodyText => Encoding.UTF8.GetString(Body);

    /// <summary>The <c>&lt;Code&gt;</c> of an S3 error document (<c>NoSuchKey</c>, <c>PreconditionFailed</c> …), or null.</summary>
    public string? ErrorCode
    {
        get
        {
            if (Body.Length == 0)
            {
                return null;
            }

            try
            {
                var root = XDocument.Parse(BodyText).Root;
                return root?.Name.LocalName == "Error" ? root.Elements().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value : null;
            }
            catch (System.Xml.XmlException)
            {
                return null;
            }
        }
    }

    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    public override string ToString() => $"{(int)Status} {Status} {BodyText}";
}

/// <summary>
/// A small S3 client for tests that talk to the blob store directly (create buckets, inspect, overwrite or delete
/// objects behind the mirror's back): path-style requests signed with <see cref="AwsSigV4"/>, bodies hashed in full.
/// </summary>
internal sealed class S3TestClient : IDisposable
{
    private readonly Uri _endpoint;
    private readonly string _accessKey;
    private readonly string _secretKey;
    private readonly string _region;
    private readonly TimeProvider _timeProvider;
    private readonly HttpClient _http;

    public S3TestClient(Uri endpoint, string accessKey, string secretKey, string region, TimeProvider? timeProvider = null)
    {
        _endpoint = endpoint;
        _accessKey = accessKey;
        _secretKey = secretKey;
        _region = region;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(5) })
        {
            Timeout = TimeSpan.FromSeconds(100),
            DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-tests/s3" } },
        };
    }

    public Task<S3Response> CreateBucketAsync(string bucket, CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Put, bucket, key: null, cancellationToken: cancellationToken);

    public Task<S3Response> DeleteBucketAsync(string bucket, CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Delete, bucket, key: null, cancellationToken: cancellationToken);

    /// <summary>PUT an object; <paramref name="headers"/> such as <c>If-None-Match: *</c> or <c>Content-Type</c> go with it (signed).</summary>
    public Task<S3Response> PutObjectAsync(
        string bucket,
        string key,
        byte[] content,
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Put, bucket, key, content, headers, cancellationToken: cancellationToken);

    /// <summary>GET an object, or a part of it with <paramref name="range"/> (e.g. <c>bytes=0-9</c>, <c>bytes=-5</c>).</summary>
    public Task<S3Response> GetObjectAsync(string bucket, string key, string? range = null, CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Get, bucket, key, headers: range is null ? null : [new("Range", range)], cancellationToken: cancellationToken);

    public Task<S3Response> HeadObjectAsync(string bucket, string key, CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Head, bucket, key, cancellationToken: cancellationToken);

    public Task<S3Response> DeleteObjectAsync(string bucket, string key, CancellationToken cancellationToken = default)
        => SendAsync(HttpMethod.Delete, bucket, key, cancellationToken: cancellationToken);

    /// <summary>Every key under <paramref name="prefix"/> (ListObjectsV2, following continuation tokens), in S3's order.</summary>
    public async Task<IReadOnlyList<string>> ListKeysAsync(string bucket, string prefix = "", CancellationToken cancellationToken = default)
    {
        var keys = new List<string>();
        string? continuation = null;
        do
        {
            var query = new List<KeyValuePair<string, string>> { new("list-type", "2"), new("prefix", prefix) };
            if (continuation is not null)
            {
                query.Add(new("continuation-token", continuation));
            }

            var response = await SendAsync(HttpMethod.Get, bucket, key: null, query: query, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (response.Status != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"ListObjectsV2 {bucket}/{prefix}: {response}");
            }

            var root = XDocument.Parse(response.BodyText).Root!;
            keys.AddRange(root.Elements().Where(e => e.Name.LocalName == "Contents")
                .Select(c => c.Elements().First(e => e.Name.LocalName == "Key").Value));
            var truncated = root.Elements().FirstOrDefault(e => e.Name.LocalName == "IsTruncated")?.Value == "true";
            continuation = truncated ? root.Elements().First(e => e.Name.LocalName == "NextContinuationToken").Value : null;
        }
        while (continuation is not null);

        return keys;
    }

    /// <summary>Sends one signed request: <c>/{bucket}/{key}</c> (each part URI-encoded), the query, the body and the headers, all signed.</summary>
    public async Task<S3Response> SendAsync(
        HttpMethod method,
        string? bucket,
        string? key,
        byte[]? body = null,
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        IEnumerable<KeyValuePair<string, string>>? query = null,
        CancellationToken cancellationToken = default)
    {
        var path = "/" + (bucket is null ? "" : AwsSigV4.UriEncode(bucket, encodeSlash: true) + (key is null ? "" : "/" + AwsSigV4.UriEncode(key, encodeSlash: false)));
        var queryPairs = query?.ToArray() ?? [];
        var queryString = string.Join('&', queryPairs.Select(p => AwsSigV4.UriEncode(p.Key, encodeSlash: true) + "=" + AwsSigV4.UriEncode(p.Value, encodeSlash: true)));
        var uri = new Uri(_endpoint.GetLeftPart(UriPartial.Authority) + path + (queryString.Length > 0 ? "?" + queryString : ""), UriKind.Absolute);

        using var request = new HttpRequestMessage(method, uri);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
        }

        var payloadHash = body is null ? AwsSigV4.EmptyPayloadHash : AwsSigV4.HexSha256(body);
        var now = _timeProvider.GetUtcNow();
        var timestamp = AwsSigV4.FormatTimestamp(now);
        var signed = new List<KeyValuePair<string, string>>
        {
            new("host", uri.Authority),
            new("x-amz-date", timestamp),
            new("x-amz-content-sha256", payloadHash),
        };
        request.Headers.Host = uri.Authority;
        request.Headers.TryAddWithoutValidation("x-amz-date", timestamp);
        request.Headers.TryAddWithoutValidation("x-amz-content-sha256", payloadHash);
        foreach (var (name, value) in headers ?? [])
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content ??= new ByteArrayContent([]);
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }

            signed.Add(new(name, value));
        }

        request.Headers.TryAddWithoutValidation(
            "Authorization",
            AwsSigV4.Authorization(method.Method, path, queryPairs, signed, payloadHash, now, _accessKey, _secretKey, _region));

        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var responseBody = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        var responseHeaders = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            responseHeaders[name] = string.Join(',', values);
        }

        return new S3Response(response.StatusCode, responseHeaders, responseBody);
    }

    public void Dispose() => _http.Dispose();
}
