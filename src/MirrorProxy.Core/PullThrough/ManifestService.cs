using System.Buffers;
using MirrorProxy.Common;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MirrorProxy.PullThrough;

internal enum ManifestStatus
{
    /// <summary>Served from the cache; fresh, or revalidated.</summary>
    Hit,
    /// <summary>Fetched from upstream now.</summary>
    Fetched,
    /// <summary>Served from the cache because the upstream could not answer.</summary>
    Stale,
    /// <summary>The upstream says it does not exist and nothing is cached.</summary>
    NotFound,
    /// <summary>The upstream could not answer and nothing is cached.</summary>
    Unavailable,
    /// <summary>The upstream answered with content that does not verify.</summary>
    Invalid,
}

/// <summary>A resolved manifest: where it is and what it is, or why there is none.</summary>
internal readonly record struct ManifestResult(ManifestStatus Status, Digest Digest, string MediaType, long Size)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public string? Detail { get; init; }

    public bool Found => Status is ManifestStatus.Hit or ManifestStatus.Fetched or ManifestStatus.Stale;
}

/// <summary>
/// Manifests by tag and by digest: digests come from the cache forever; tags are served from the cache while
/// younger than the tag TTL, then revalidated with a HEAD (free against Docker Hub's limit) and fetched only when
/// their digest moved. When the upstream cannot answer, a cached manifest is served stale. Concurrent requests
/// for one reference share one upstream exchange.
/// </summary>
internal sealed partial class ManifestService
{
    /// <summary>
    /// containerd's limit, copied exactly (its <c>MaxManifestSize</c> is written <c>4 * 1048 * 1048</c>): a manifest
    /// containerd would reject is not worth storing.
    /// </summary>
    public const int MaxManifestSize = 4 * 1048 * 1048;

    private readonly SingleFlight<ManifestResult> _exchanges = new();
    private readonly MirrorCache _cache;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<ManifestService> _logger;
    private readonly TagFreshnessPolicy _freshness;
    private readonly bool _honourNotFound;
    private readonly CancellationToken _stopping;

    public ManifestService(
        MirrorCache cache, MirrorMetrics metrics, TimeProvider time, TagFreshnessPolicy freshness, IOptions<MirrorProxyOptions> options,
        IHostApplicationLifetime lifetime, ILogger<ManifestService> logger)
    {
        _cache = cache;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _freshness = freshness;
        _honourNotFound = options.Value.HonourUpstreamNotFound;
        _stopping = lifetime.ApplicationStopping;
    }

    public async ValueTask<ManifestResult> GetByDigestAsync(Route route, Digest digest, CancellationToken cancellationToken)
    {
        if (await _cache.TryGetContentAsync(digest).ConfigureAwait(false) is { } entry)
        {
            return new ManifestResult(ManifestStatus.Hit, digest, entry.MediaType ?? await SniffStoredAsync(digest, cancellationToken).ConfigureAwait(false), entry.Size);
        }

        return await SharedAsync(route, digest.Value, () => FetchAsync(route, digest.Value, digest, cached: null), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<ManifestResult> GetByTagAsync(Route route, string tag, CancellationToken cancellationToken)
    {
        var cached = await _cache.TryGetTagAsync(route.Upstream.Name, route.Repository, tag).ConfigureAwait(false);
        if (cached is not null && _time.GetUtcNow() - cached.FetchedAt < _freshness.TtlFor(route.Upstream, route.Repository, tag)
            && await IsStoredAsync(cached.Digest).ConfigureAwait(false))
        {
            return new ManifestResult(ManifestStatus.Hit, cached.Digest, cached.MediaType, cached.Size);
        }

        return await SharedAsync(route, tag, () => RevalidateAsync(route, tag, cached), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<ManifestResult> SharedAsync(Route route, string reference, Func<Task<ManifestResult>> work, CancellationToken cancellationToken)
    {
        var key = string.Concat(route.Upstream.Name, "\n", route.Repository, "\n", reference);
        return await _exchanges.RunAsync(key, static work => work(), work, cancellationToken).ConfigureAwait(false);
    }

    private async Task<ManifestResult> RevalidateAsync(Route route, string tag, TagRecord? cached)
    {
        if (cached is not null && await IsStoredAsync(cached.Digest).ConfigureAwait(false))
        {
            using var head = await route.Upstream.SendAsync(
                new UpstreamRequest(HttpMethod.Head, route.Repository, "manifests/" + tag) { Accept = MediaTypes.ManifestAccept }, _stopping).ConfigureAwait(false);
            if (head.IsSuccess)
            {
                if (Digest.TryParse(HeaderValue(head.Message!, "Docker-Content-Digest"), out var current) && current == cached.Digest)
                {
                    await _cache.PutTagAsync(route.Upstream.Name, route.Repository, tag, cached with { FetchedAt = _time.GetUtcNow() }, _stopping).ConfigureAwait(false);
                    return new ManifestResult(ManifestStatus.Hit, cached.Digest, cached.MediaType, cached.Size);
                }
            }
            else if (head.Outcome == UpstreamOutcome.NotFound && _honourNotFound)
            {
                return Deleted(route, tag, head);
            }
            else if (head.Outcome != UpstreamOutcome.Failed)
            {
                // Unreachable, 5xx, 429, 401/403, and 404 unless configured otherwise: serve what the cache holds.
                return Stale(cached, head);
            }
        }

        return await FetchAsync(route, tag, null, cached).ConfigureAwait(false);
    }

    private async Task<ManifestResult> FetchAsync(Route route, string reference, Digest? expected, TagRecord? cached)
    {
        var started = _time.GetTimestamp();
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, "manifests/" + reference) { Accept = MediaTypes.ManifestAccept }, _stopping).ConfigureAwait(false);

        if (!response.IsSuccess)
        {
            if (cached is not null && response.Outcome == UpstreamOutcome.NotFound && _honourNotFound)
            {
                return Deleted(route, reference, response);
            }

            if (cached is not null && response.Outcome != UpstreamOutcome.Failed && await IsStoredAsync(cached.Digest).ConfigureAwait(false))
            {
                return Stale(cached, response);
            }

            var status = response.Outcome == UpstreamOutcome.NotFound ? ManifestStatus.NotFound : ManifestStatus.Unavailable;
            return new ManifestResult(status, default, "", 0) { UpstreamOutcome = response.Outcome, RetryAfter = response.RetryAfter, Detail = response.Detail };
        }

        var content = response.Message!.Content;
        if (content.Headers.ContentLength > MaxManifestSize)
        {
            return Invalid(route, reference, $"manifest of {content.Headers.ContentLength} bytes exceeds {MaxManifestSize}");
        }

        byte[] bytes;
        using var bodyDeadline = new CancellationTokenSource(route.Upstream.Options.RequestTimeout, _time);
        using var bodyToken = CancellationTokenSource.CreateLinkedTokenSource(_stopping, bodyDeadline.Token);
        try
        {
            // A manifest is small: a body that trickles past the request timeout is treated as no answer.
            bytes = await ReadLimitedAsync(content, MaxManifestSize, bodyToken.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidDataException
            || (ex is OperationCanceledException && bodyDeadline.IsCancellationRequested && !_stopping.IsCancellationRequested))
        {
            var failure = new ManifestResult(ManifestStatus.Unavailable, default, "", 0) { UpstreamOutcome = UpstreamOutcome.Unreachable, Detail = ex.Message };
            return cached is not null && await IsStoredAsync(cached.Digest).ConfigureAwait(false) ? Stale(cached, new UpstreamResponse(UpstreamOutcome.Unreachable, null, ex.Message)) : failure;
        }

        var digest = expected ?? (Digest.TryParse(HeaderValue(response.Message, "Docker-Content-Digest"), out var announced) && announced.IsSha512
            ? announced
            : Digest.ComputeSha256(bytes));
        if (!digest.Matches(bytes))
        {
            _metrics.DigestMismatch(route.Upstream.Name);
            return Invalid(route, reference, "digest mismatch: the manifest does not hash to " + digest.Value);
        }

        var mediaType = ManifestMediaType.Resolve(MediaTypes.StripParameters(content.Headers.ContentType?.ToString()), bytes);
        await _cache.PutManifestAsync(digest, bytes, mediaType, _stopping).ConfigureAwait(false);
        if (expected is null)
        {
            await _cache.PutTagAsync(route.Upstream.Name, route.Repository, reference, new TagRecord(digest, mediaType, bytes.Length, _time.GetUtcNow()), _stopping).ConfigureAwait(false);
        }

        Log.ManifestFetched(_logger, route.Upstream.Name, route.Repository, reference, digest.Value, bytes.Length, _time.GetElapsedTime(started).TotalMilliseconds);
        return new ManifestResult(ManifestStatus.Fetched, digest, mediaType, bytes.Length);
    }

    private ManifestResult Stale(TagRecord cached, in UpstreamResponse response) =>
        new(ManifestStatus.Stale, cached.Digest, cached.MediaType, cached.Size) { UpstreamOutcome = response.Outcome, Detail = response.Detail };

    /// <summary>The upstream no longer has a cached tag, and the policy says to believe it: the mirror forgets the tag.</summary>
    private ManifestResult Deleted(Route route, string tag, in UpstreamResponse response)
    {
        _cache.DeleteTag(route.Upstream.Name, route.Repository, tag);
        Log.TagDeleted(_logger, route.Upstream.Name, route.Repository, tag);
        return new ManifestResult(ManifestStatus.NotFound, default, "", 0) { UpstreamOutcome = response.Outcome, Detail = response.Detail };
    }

    private ManifestResult Invalid(Route route, string reference, string reason)
    {
        Log.ManifestInvalid(_logger, route.Upstream.Name, route.Repository, reference, reason);
        return new ManifestResult(ManifestStatus.Invalid, default, "", 0) { UpstreamOutcome = UpstreamOutcome.Failed, Detail = reason };
    }

    private async ValueTask<bool> IsStoredAsync(Digest digest) => await _cache.TryGetContentAsync(digest).ConfigureAwait(false) is not null;

    private async ValueTask<string> SniffStoredAsync(Digest digest, CancellationToken cancellationToken)
    {
        var bytes = await _cache.ReadContentAsync(digest, cancellationToken).ConfigureAwait(false);
        return bytes is null ? MediaTypes.OctetStream : ManifestMediaType.Resolve(null, bytes);
    }

    private static string? HeaderValue(HttpResponseMessage message, string name) =>
        message.Headers.NonValidated.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, int limit, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(content.Headers.ContentLength ?? 16 * 1024, limit) + 1);
        while (true)
        {
            var memory = buffer.GetMemory(16 * 1024);
            var read = await stream.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            buffer.Advance(read);
            if (buffer.WrittenCount > limit)
            {
                throw new InvalidDataException($"manifest exceeds {limit} bytes");
            }
        }

        if (content.Headers.ContentLength is { } length && length != buffer.WrittenCount)
        {
            throw new InvalidDataException($"manifest body ended after {buffer.WrittenCount} of {length} bytes");
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static partial class Log
    {
        [LoggerMessage(3101, LogLevel.Information, "Fetched manifest {Repository}:{Reference} from {Upstream}: {Digest}, {Bytes} bytes in {ElapsedMs:0} ms")]
        public static partial void ManifestFetched(ILogger logger, string upstream, string repository, string reference, string digest, int bytes, double elapsedMs);

        [LoggerMessage(3102, LogLevel.Warning, "Manifest {Repository}:{Reference} from {Upstream} rejected: {Reason}")]
        public static partial void ManifestInvalid(ILogger logger, string upstream, string repository, string reference, string reason);

        [LoggerMessage(3103, LogLevel.Information, "Tag {Repository}:{Tag} is gone from {Upstream}; removed from the cache")]
        public static partial void TagDeleted(ILogger logger, string upstream, string repository, string tag);
    }
}
