using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Xml;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;

namespace MirrorProxy.Storage.S3;

/// <summary>What the store said about an object: its size, when it was written, and the metadata the mirror keeps with it.</summary>
internal readonly record struct S3ObjectInfo(long Size, DateTimeOffset LastModified, string? MediaType, string? Origins);

/// <summary>One object of a listing.</summary>
internal readonly record struct S3ListEntry(string Key, long Size, DateTimeOffset LastModified);

/// <summary>An object being read: its body from <see cref="Offset"/>, and the whole object's size.</summary>
internal sealed class S3Body(HttpResponseMessage response, Stream content, long offset, S3ObjectInfo info) : IDisposable
{
    public Stream Content { get; } = content;

    public long Offset { get; } = offset;

    public S3ObjectInfo Info { get; } = info;

    public void Dispose()
    {
        Content.Dispose();
        response.Dispose();
    }
}

/// <summary>
/// A small S3 client over <see cref="HttpClient"/>: signed requests (<see cref="S3Signer"/>), outcomes as
/// <see cref="StorageStatus"/> values, XML read with <see cref="XmlReader"/> (nothing reflective: it runs in the
/// Native AOT build). Every request is bounded by <c>RequestTimeout</c>; a circuit breaker stops dialing a store that
/// is down, so that a read served from the local cache never waits for it. Only what the mirror needs: bucket
/// creation, HEAD, ranged GET, PUT (conditional), server-side copy for metadata, DELETE and listing.
/// </summary>
internal sealed partial class S3Client : IDisposable
{
    private const string MetaMediaType = "x-amz-meta-mediatype";
    private const string MetaOrigins = "x-amz-meta-origins";

    private readonly HttpClient _http;
    private readonly S3Signer _signer;
    private readonly S3Options _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _breaker;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly Uri _endpoint;
    private string? _lastFailure;
    private volatile bool _bucketExists;

    public S3Client(S3Options options, S3Credentials credentials, TimeProvider time, ILogger logger, HttpMessageHandler? handler = null)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _endpoint = new Uri(options.Endpoint!.TrimEnd('/') + "/");
        _signer = new S3Signer(credentials.AccessKey, credentials.SecretKey, options.Region);
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.ConnectTimeout,
            MaxConnectionsPerServer = options.MaxConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };

        _breaker = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                // Transport failures and 5xx: a store that does not answer is skipped for BreakDuration.
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is HttpRequestException or TimeoutException or IOException),
                FailureRatio = 0.5,
                MinimumThroughput = 2,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = options.BreakDuration,
                StateProvider = _state,
                OnOpened = args =>
                {
                    Log.Unreachable(_logger, _endpoint, _lastFailure ?? "failures", _options.BreakDuration.TotalSeconds);
                    return default;
                },
                OnClosed = _ =>
                {
                    Log.Reachable(_logger, _endpoint);
                    return default;
                },
            })
            .Build();
    }

    /// <summary>False while the breaker holds the store down.</summary>
    public bool IsReachable => _state.CircuitState is CircuitState.Closed or CircuitState.HalfOpen;

    /// <summary>Why the store was last found unreachable.</summary>
    public string? LastFailure => Volatile.Read(ref _lastFailure);

    public Uri Endpoint => _endpoint;

    /// <summary>Creates the bucket when it is missing, once: after the first success this costs nothing.</summary>
    public ValueTask<StorageStatus> EnsureBucketOnceAsync(CancellationToken cancellationToken) =>
        _bucketExists ? ValueTask.FromResult(StorageStatus.Ok) : EnsureBucketAsync(cancellationToken);

    /// <summary>Creates the bucket when it is missing (a HEAD of the bucket when it is there: a probe of the store).</summary>
    public async ValueTask<StorageStatus> EnsureBucketAsync(CancellationToken cancellationToken)
    {
        var (status, response) = await SendAsync(HttpMethod.Head, null, null, null, S3Signer.EmptyPayloadHash, cancellationToken).ConfigureAwait(false);
        using (response)
        {
            if (status != StorageStatus.NotFound)
            {
                _bucketExists = status == StorageStatus.Ok;
                return status;
            }
        }

        (status, response) = await SendAsync(HttpMethod.Put, null, null, null, S3Signer.EmptyPayloadHash, cancellationToken).ConfigureAwait(false);
        using (response)
        {
            if (status == StorageStatus.Ok)
            {
                Log.BucketCreated(_logger, _options.Bucket!);
            }

            // Created meanwhile by another replica (409 BucketAlreadyOwnedByYou): as good.
            status = status == StorageStatus.AlreadyExists ? StorageStatus.Ok : status;
            _bucketExists = status == StorageStatus.Ok;
            return status;
        }
    }

    public async ValueTask<(StorageStatus Status, S3ObjectInfo Info)> HeadAsync(string key, CancellationToken cancellationToken)
    {
        var (status, response) = await SendAsync(HttpMethod.Head, key, null, null, S3Signer.EmptyPayloadHash, cancellationToken).ConfigureAwait(false);
        using (response)
        {
            return status == StorageStatus.Ok ? (status, InfoOf(response!, response!.Content.Headers.ContentLength ?? 0)) : (status, default);
        }
    }

    /// <summary>Opens an object's body from <paramref name="offset"/> (a Range request when not 0).</summary>
    public async ValueTask<(StorageStatus Status, S3Body? Body)> GetAsync(string key, long offset, CancellationToken cancellationToken)
    {
        var (status, response) = await SendAsync(HttpMethod.Get, key, null, request =>
        {
            if (offset > 0)
            {
                request.Headers.Range = new RangeHeaderValue(offset, null);
            }
        }, S3Signer.EmptyPayloadHash, cancellationToken, ResponseBody.Stream).ConfigureAwait(false);
        if (status != StorageStatus.Ok)
        {
            response?.Dispose();
            return (status == StorageStatus.Mismatch ? StorageStatus.NotFound : status, null);
        }

        var length = response!.Content.Headers.ContentLength ?? -1;
        var total = response.Content.Headers.ContentRange?.Length ?? (offset == 0 ? length : -1);
        if (length < 0 || total < 0 || (offset > 0 && response.StatusCode != HttpStatusCode.PartialContent))
        {
            response.Dispose();
            return (StorageStatus.IoError, null);
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return (StorageStatus.Ok, new S3Body(response, stream, offset, InfoOf(response, total)));
    }

    /// <summary>
    /// Stores an object. <paramref name="ifNoneMatch"/>: only when absent (<see cref="StorageStatus.AlreadyExists"/>
    /// otherwise). A body that does not hash to <paramref name="payloadHash"/> is refused by the store: <see cref="StorageStatus.Mismatch"/>.
    /// </summary>
    public async ValueTask<StorageStatus> PutAsync(
        string key, HttpContent content, string payloadHash, string? mediaType, string? origins, bool ifNoneMatch, CancellationToken cancellationToken)
    {
        var (status, response) = await SendAsync(HttpMethod.Put, key, content, request =>
        {
            if (ifNoneMatch)
            {
                request.Headers.TryAddWithoutValidation("If-None-Match", "*");
            }

            AddMetadata(request, mediaType, origins);
        }, payloadHash, cancellationToken).ConfigureAwait(false);
        response?.Dispose();
        return status;
    }

    /// <summary>Replaces an object's metadata (a server-side copy onto itself).</summary>
    public async ValueTask<StorageStatus> SetMetadataAsync(string key, string? mediaType, string? origins, CancellationToken cancellationToken)
    {
        var source = "/" + _options.Bucket + "/" + S3Signer.EncodePath(key);
        var (status, response) = await SendAsync(HttpMethod.Put, key, null, request =>
        {
            request.Headers.TryAddWithoutValidation("x-amz-copy-source", source);
            request.Headers.TryAddWithoutValidation("x-amz-metadata-directive", "REPLACE");
            AddMetadata(request, mediaType, origins);
        }, S3Signer.EmptyPayloadHash, cancellationToken, ResponseBody.Read).ConfigureAwait(false);
        using (response)
        {
            // A copy can fail after its 200 (the error is in the body).
            if (status == StorageStatus.Ok && response is not null && await ReadErrorCodeAsync(response, cancellationToken).ConfigureAwait(false) is { } code)
            {
                Log.RequestFailed(_logger, "PUT (copy)", key, (int)response.StatusCode, code);
                return StorageStatus.IoError;
            }

            return status;
        }
    }

    public async ValueTask<StorageStatus> DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var (status, response) = await SendAsync(HttpMethod.Delete, key, null, null, S3Signer.EmptyPayloadHash, cancellationToken).ConfigureAwait(false);
        response?.Dispose();
        return status;
    }

    /// <summary>
    /// Lists keys under <paramref name="prefix"/>, page by page (1000 at a time, nothing held beyond a page). With
    /// a <paramref name="delimiter"/>, the common prefixes one level down come as entries of size -1.
    /// A store that fails mid-listing ends the listing (logged): callers treat a listing as best effort.
    /// </summary>
    public async IAsyncEnumerable<S3ListEntry> ListAsync(string prefix, string? delimiter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? continuation = null;
        do
        {
            var query = "list-type=2&max-keys=1000&prefix=" + S3Signer.EncodeQueryValue(prefix)
                + (delimiter is null ? "" : "&delimiter=" + S3Signer.EncodeQueryValue(delimiter))
                + (continuation is null ? "" : "&continuation-token=" + S3Signer.EncodeQueryValue(continuation));
            var (status, response) = await SendAsync(HttpMethod.Get, null, null, null, S3Signer.EmptyPayloadHash, cancellationToken, ResponseBody.Read, query).ConfigureAwait(false);
            List<S3ListEntry> page;
            using (response)
            {
                if (status != StorageStatus.Ok)
                {
                    // No bucket yet: nothing to list.
                    if (status != StorageStatus.NotFound)
                    {
                        Log.ListingFailed(_logger, prefix, status);
                    }

                    yield break;
                }

                await using var body = await response!.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                (page, continuation) = await ReadListingAsync(body, cancellationToken).ConfigureAwait(false);
            }

            foreach (var entry in page)
            {
                yield return entry;
            }
        }
        while (continuation is not null);
    }

    internal static async Task<(List<S3ListEntry> Page, string? Continuation)> ReadListingAsync(Stream body, CancellationToken cancellationToken)
    {
        var page = new List<S3ListEntry>();
        string? continuation = null;
        var truncated = false;
        using var reader = XmlReader.Create(body, new XmlReaderSettings { Async = true, DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, IgnoreWhitespace = true });
        await reader.MoveToContentAsync().ConfigureAwait(false);
        if (reader.IsEmptyElement || !await reader.ReadAsync().ConfigureAwait(false))
        {
            return (page, null);
        }

        // The children of ListBucketResult, one at a time: each branch leaves the reader on the next sibling.
        while (reader.NodeType != XmlNodeType.EndElement && !reader.EOF)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (reader.NodeType != XmlNodeType.Element)
            {
                await reader.ReadAsync().ConfigureAwait(false);
                continue;
            }

            switch (reader.LocalName)
            {
                case "Contents" or "CommonPrefixes":
                    var prefixes = reader.LocalName == "CommonPrefixes";
                    var (key, size, modified) = await ReadItemAsync(reader).ConfigureAwait(false);
                    if (key is not null)
                    {
                        page.Add(new S3ListEntry(key, prefixes ? -1 : size, modified));
                    }

                    break;
                case "IsTruncated":
                    truncated = await reader.ReadElementContentAsStringAsync().ConfigureAwait(false) == "true";
                    break;
                case "NextContinuationToken":
                    continuation = await reader.ReadElementContentAsStringAsync().ConfigureAwait(false);
                    break;
                default:
                    await reader.SkipAsync().ConfigureAwait(false);
                    break;
            }
        }

        return (page, truncated ? continuation : null);
    }

    /// <summary>Reads one <c>Contents</c> or <c>CommonPrefixes</c> element whole, leaving the reader after it.</summary>
    private static async Task<(string? Key, long Size, DateTimeOffset Modified)> ReadItemAsync(XmlReader reader)
    {
        string? key = null;
        long size = -1;
        var modified = DateTimeOffset.MinValue;
        if (reader.IsEmptyElement)
        {
            await reader.ReadAsync().ConfigureAwait(false);
            return (null, size, modified);
        }

        var depth = reader.Depth;
        await reader.ReadAsync().ConfigureAwait(false);
        while (!(reader.NodeType == XmlNodeType.EndElement && reader.Depth == depth) && !reader.EOF)
        {
            if (reader.NodeType != XmlNodeType.Element)
            {
                await reader.ReadAsync().ConfigureAwait(false);
                continue;
            }

            switch (reader.LocalName)
            {
                case "Key" or "Prefix":
                    key = await reader.ReadElementContentAsStringAsync().ConfigureAwait(false);
                    break;
                case "Size":
                    size = long.TryParse(await reader.ReadElementContentAsStringAsync().ConfigureAwait(false), System.Globalization.NumberStyles.None,
                        System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed : -1;
                    break;
                case "LastModified":
                    modified = DateTimeOffset.TryParse(await reader.ReadElementContentAsStringAsync().ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture,
                        System.Globalization.DateTimeStyles.AssumeUniversal, out var when) ? when : DateTimeOffset.MinValue;
                    break;
                default:
                    await reader.SkipAsync().ConfigureAwait(false);
                    break;
            }
        }

        await reader.ReadAsync().ConfigureAwait(false);
        return (key, size, modified);
    }

    private enum ResponseBody
    {
        /// <summary>Read (and drop) the body before answering: the connection goes back to the pool.</summary>
        None,
        /// <summary>The caller reads the body (a listing, a copy's result); answered once it has arrived.</summary>
        Read,
        /// <summary>The caller streams the body; answered at the headers.</summary>
        Stream,
    }

    /// <summary>
    /// Sends one signed request through the breaker. The answer is the status and, when the caller wants the
    /// body (or the headers of a HEAD), the response; transport failures and timeouts are
    /// <see cref="StorageStatus.Unavailable"/>, never exceptions.
    /// </summary>
    private async ValueTask<(StorageStatus Status, HttpResponseMessage? Response)> SendAsync(
        HttpMethod method, string? key, HttpContent? content, Action<HttpRequestMessage>? prepare, string payloadHash, CancellationToken cancellationToken,
        ResponseBody body = ResponseBody.None, string? query = null)
    {
        if (!IsReachable)
        {
            content?.Dispose();
            return (StorageStatus.Unavailable, null);
        }

        var uri = UriOf(key, query);
        try
        {
            return await _breaker.ExecuteAsync(static async (state, token) =>
            {
                var (client, method, uri, content, prepare, payloadHash, body, key) = state;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                timeout.CancelAfter(client._options.RequestTimeout);
                using var request = new HttpRequestMessage(method, uri) { Content = content, Version = HttpVersion.Version11 };
                prepare?.Invoke(request);
                client._signer.Sign(request, payloadHash, client._time.GetUtcNow());
                HttpResponseMessage response;
                try
                {
                    response = await client._http.SendAsync(request, body == ResponseBody.Stream ? HttpCompletionOption.ResponseHeadersRead : HttpCompletionOption.ResponseContentRead, timeout.Token)
                        .ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!token.IsCancellationRequested)
                {
                    client.Failed($"{method} {key ?? "bucket"}: no answer within {client._options.RequestTimeout.TotalSeconds:0}s");
                    throw new TimeoutException($"no answer within {client._options.RequestTimeout}");
                }
                catch (HttpRequestException ex)
                {
                    client.Failed($"{method} {key ?? "bucket"}: {ex.Message}");
                    throw;
                }

                var status = Classify(response.StatusCode);
                if ((int)response.StatusCode >= 500)
                {
                    client.Failed($"{method} {key ?? "bucket"}: {(int)response.StatusCode}");
                    response.Dispose();
                    throw new IOException($"the store answered {(int)response.StatusCode}");
                }

                if (status != StorageStatus.Ok && status != StorageStatus.NotFound && status != StorageStatus.AlreadyExists)
                {
                    var code = method == HttpMethod.Head ? null : await ReadErrorCodeAsync(response, token).ConfigureAwait(false);
                    if (code is "BadDigest" or "XAmzContentSHA256Mismatch" or "InvalidDigest")
                    {
                        status = StorageStatus.Mismatch;
                    }

                    Log.RequestFailed(client._logger, method.Method, key ?? "(bucket)", (int)response.StatusCode, code ?? "");
                }

                if (status != StorageStatus.Ok || (body == ResponseBody.None && method != HttpMethod.Head))
                {
                    // Only a successful HEAD, or a body the caller reads, is handed over.
                    response.Dispose();
                    return (status, (HttpResponseMessage?)null);
                }

                return (status, (HttpResponseMessage?)response);
            }, (this, method, uri, content, prepare, payloadHash, body, key), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutException or IOException or BrokenCircuitException)
        {
            return (StorageStatus.Unavailable, null);
        }
    }

    private void Failed(string reason) => Volatile.Write(ref _lastFailure, reason);

    private static StorageStatus Classify(HttpStatusCode status) => status switch
    {
        HttpStatusCode.OK or HttpStatusCode.NoContent or HttpStatusCode.PartialContent => StorageStatus.Ok,
        HttpStatusCode.NotFound => StorageStatus.NotFound,
        HttpStatusCode.PreconditionFailed => StorageStatus.AlreadyExists,
        HttpStatusCode.Conflict => StorageStatus.AlreadyExists,
        HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized => StorageStatus.ReadOnly,
        HttpStatusCode.RequestedRangeNotSatisfiable => StorageStatus.Mismatch,
        _ => StorageStatus.IoError,
    };

    /// <summary>The <c>Code</c> of an S3 error document, when the body is one.</summary>
    private static async Task<string?> ReadErrorCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var reader = XmlReader.Create(body, new XmlReaderSettings { Async = true, DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            while (await reader.ReadAsync().ConfigureAwait(false))
            {
                if (reader.NodeType == XmlNodeType.Element && reader.LocalName == "Code" && reader.Depth == 1)
                {
                    return await reader.ReadElementContentAsStringAsync().ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is XmlException or IOException or HttpRequestException)
        {
            // Not an error document.
        }

        return null;
    }

    private static S3ObjectInfo InfoOf(HttpResponseMessage response, long size)
    {
        var modified = response.Content.Headers.LastModified ?? DateTimeOffset.MinValue;
        return new S3ObjectInfo(size, modified, Header(response, MetaMediaType), Header(response, MetaOrigins));

        static string? Header(HttpResponseMessage response, string name) =>
            response.Headers.TryGetValues(name, out var values) ? Uri.UnescapeDataString(values.First()) : null;
    }

    private static void AddMetadata(HttpRequestMessage request, string? mediaType, string? origins)
    {
        if (mediaType is not null)
        {
            request.Headers.TryAddWithoutValidation(MetaMediaType, Uri.EscapeDataString(mediaType));
        }

        if (!string.IsNullOrEmpty(origins))
        {
            request.Headers.TryAddWithoutValidation(MetaOrigins, Uri.EscapeDataString(origins));
        }
    }

    private Uri UriOf(string? key, string? query)
    {
        var encodedKey = key is null ? "" : S3Signer.EncodePath(key);
        string text;
        if (_options.ForcePathStyle)
        {
            text = _endpoint.GetLeftPart(UriPartial.Authority) + "/" + _options.Bucket + (key is null ? "" : "/" + encodedKey);
        }
        else
        {
            var host = _options.Bucket + "." + _endpoint.Host + (_endpoint.IsDefaultPort ? "" : ":" + _endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            text = _endpoint.Scheme + "://" + host + "/" + encodedKey;
        }

        if (query is not null)
        {
            text += "?" + query;
        }

        // Sent exactly as encoded here: the signature covers this path.
        return new Uri(text, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
    }

    /// <summary>The hex SHA-256 of a small body (a document), as its payload hash.</summary>
    public static string PayloadHash(ReadOnlySpan<byte> content) => Convert.ToHexStringLower(SHA256.HashData(content));

    public void Dispose() => _http.Dispose();

    private static partial class Log
    {
        [LoggerMessage(2301, LogLevel.Warning, "Shared store {Endpoint} is unreachable ({Reason}): requests to it fail at once for {BreakSeconds:0} s; cached content is served from the local cache")]
        public static partial void Unreachable(ILogger logger, Uri endpoint, string reason, double breakSeconds);

        [LoggerMessage(2302, LogLevel.Information, "Shared store {Endpoint} is reachable again")]
        public static partial void Reachable(ILogger logger, Uri endpoint);

        [LoggerMessage(2303, LogLevel.Warning, "Shared store answered {Method} {Key} with {Status} {Code}")]
        public static partial void RequestFailed(ILogger logger, string method, string key, int status, string code);

        [LoggerMessage(2304, LogLevel.Warning, "Listing {Prefix} of the shared store failed: {Status}")]
        public static partial void ListingFailed(ILogger logger, string prefix, StorageStatus status);

        [LoggerMessage(2305, LogLevel.Information, "Created bucket {Bucket} in the shared store")]
        public static partial void BucketCreated(ILogger logger, string bucket);
    }
}
