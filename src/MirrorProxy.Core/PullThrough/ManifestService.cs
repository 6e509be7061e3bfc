using System.Buffers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Coordination;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

internal enum ManifestStatus
{
    /// <summary>Served from the cache; fresh, or revalidated.</summary>
    Hit,
    /// <summary>Fetched from upstream now.</summary>
    Fetched,
    /// <summary>Served from the cache because the upstream could not answer (or answered with something unusable).</summary>
    Stale,
    /// <summary>The upstream says it does not exist and nothing is cached.</summary>
    NotFound,
    /// <summary>The upstream refused access and nothing is cached.</summary>
    Denied,
    /// <summary>The upstream could not answer and nothing is cached.</summary>
    Unavailable,
    /// <summary>The upstream answered with content that is not a manifest or does not verify, and nothing is cached.</summary>
    Invalid,
}

/// <summary>A resolved manifest: its bytes and what they are, or why there are none.</summary>
internal readonly record struct ManifestResult(ManifestStatus Status, Digest Digest, string MediaType, byte[]? Content)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public string? Detail { get; init; }

    public bool Found => Status is ManifestStatus.Hit or ManifestStatus.Fetched or ManifestStatus.Stale;

    public static ManifestResult Failure(ManifestStatus status, UpstreamOutcome outcome, TimeSpan? retryAfter, string? detail) =>
        new(status, default, "", null) { UpstreamOutcome = outcome, RetryAfter = retryAfter, Detail = detail };
}

/// <summary>
/// Manifests by tag and by digest. Digests come from the cache forever; tags are served from the cache while
/// younger than the tag TTL, then revalidated with a HEAD (free against Docker Hub's limit) and fetched only when
/// their digest moved. While the upstream is marked down, a cached tag is served at once without dialing; when an
/// upstream answer of any kind is unusable (an error status, a redirect loop, an HTML page, a body that is not a
/// manifest), the cached copy is served stale and the cached tag is kept. Only bodies that parse as the manifest
/// type they claim and hash to their digest are stored. Concurrent requests for one reference share one exchange.
/// </summary>
internal sealed partial class ManifestService
{
    /// <summary>
    /// containerd's limit, copied exactly (its <c>MaxManifestSize</c> is written <c>4 * 1048 * 1048</c>): a manifest
    /// containerd would reject is not worth storing, and nothing larger is ever read into memory as a manifest.
    /// </summary>
    public const int MaxManifestSize = 4 * 1048 * 1048;

    private readonly SingleFlight<ManifestResult> _exchanges = new();
    private readonly MirrorCache _cache;
    private readonly ICoordination _coordination;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<ManifestService> _logger;
    private readonly TagFreshnessPolicy _freshness;
    private readonly bool _honourNotFound;
    private readonly CancellationToken _stopping;

    public ManifestService(
        MirrorCache cache, ICoordination coordination, MirrorMetrics metrics, TimeProvider time, TagFreshnessPolicy freshness, IOptions<PullThroughOptions> options,
        BackgroundWork background, ILogger<ManifestService> logger)
    {
        _cache = cache;
        _coordination = coordination;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _freshness = freshness;
        _honourNotFound = options.Value.HonourUpstreamNotFound;
        _stopping = background.Stopping;
    }

    public async ValueTask<ManifestResult> GetByDigestAsync(Route route, Digest digest, CancellationToken cancellationToken)
    {
        var entry = await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false);
        if (entry is { Size: > MaxManifestSize })
        {
            // Cached content larger than any manifest (a layer asked for as one) is not a manifest anywhere: asking the
            // upstream would only make it read the layer as one (distribution answers 500, which counts against it).
            return ManifestResult.Failure(ManifestStatus.NotFound, UpstreamOutcome.NotFound, null, "the digest names cached content larger than a manifest can be");
        }

        if (entry is { } found && await TryCachedAsync(route, digest, found, cancellationToken).ConfigureAwait(false) is { } cached)
        {
            return new ManifestResult(ManifestStatus.Hit, digest, cached.MediaType, cached.Content);
        }

        return await SharedAsync(route, digest.Value, static s => s.Self.FetchAsync(s.Route, s.Digest.Value, s.Digest, null), (Self: this, Route: route, Digest: digest), cancellationToken)
            .ConfigureAwait(false);
    }

    public async ValueTask<ManifestResult> GetByTagAsync(Route route, string tag, CancellationToken cancellationToken)
    {
        var ttl = _freshness.TtlFor(route.Upstream, route.Repository, tag);
        var record = await _cache.GetTagAsync(route.Upstream.Name, route.Repository, tag, cancellationToken).ConfigureAwait(false);
        if (_coordination.IsShared && (record is null || _time.GetUtcNow() - record.FetchedAt >= ttl))
        {
            record = await AdoptSharedTagAsync(route, tag, record, cancellationToken).ConfigureAwait(false);
        }

        if (record is not null && await TryCachedAsync(route, record.Digest, cancellationToken).ConfigureAwait(false) is { } cached)
        {
            if (_time.GetUtcNow() - record.FetchedAt < ttl)
            {
                return new ManifestResult(ManifestStatus.Hit, record.Digest, cached.MediaType, cached.Content);
            }

            if (!route.Upstream.Resilience.IsAvailable)
            {
                // Marked down or offline: the cached copy now, no dialing; the probe brings the upstream back.
                var why = route.Upstream.Resilience.Down?.Reason ?? "the mirror is offline";
                return new ManifestResult(ManifestStatus.Stale, record.Digest, cached.MediaType, cached.Content) { UpstreamOutcome = UpstreamOutcome.Skipped, Detail = why };
            }
        }
        else
        {
            record = null;
        }

        return await SharedAsync(route, tag, static s => s.Self.RevalidateAsync(s.Route, s.Tag, s.Record), (Self: this, Route: route, Tag: tag, Record: record), cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// The cached manifest bytes and type, or null when the cache holds no verified manifest for the digest that this
    /// route may read: content a private upstream brought in is read through another upstream's route only once that
    /// upstream has shown it holds it (a HEAD by digest).
    /// </summary>
    private async ValueTask<(string MediaType, byte[] Content)?> TryCachedAsync(Route route, Digest digest, CancellationToken cancellationToken) =>
        await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is { } entry
            ? await TryCachedAsync(route, digest, entry, cancellationToken).ConfigureAwait(false)
            : null;

    private async ValueTask<(string MediaType, byte[] Content)?> TryCachedAsync(Route route, Digest digest, ContentEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Size > MaxManifestSize)
        {
            // Never read anything larger than a manifest can be as one: a layer asked for as a manifest is not one.
            return null;
        }

        entry = await _cache.ResolveAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (entry.Kind != ContentKind.Manifest)
        {
            return null;
        }

        if (!BlobService.IsVisible(entry, route))
        {
            using var proof = await route.Upstream.SendAsync(
                new UpstreamRequest(HttpMethod.Head, route.Repository, "manifests/" + digest.Value) { Accept = MediaTypes.ManifestAccept }, cancellationToken).ConfigureAwait(false);
            if (!proof.IsSuccess)
            {
                return null;
            }

            entry = await _cache.VouchAsync(digest, entry, route.Upstream.Origin, cancellationToken).ConfigureAwait(false);
        }

        var (status, content) = await _cache.ReadSmallAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (status != CachedContentStatus.Ok)
        {
            return null;
        }

        _cache.Touch(digest, entry);
        return (entry.MediaType ?? ManifestMediaType.Resolve(null, content), content!);
    }

    /// <summary>
    /// The tag as another replica saw it upstream, when that is newer than this replica's record: replicas then
    /// agree on a tag within its TTL, and one revalidation serves them all.
    /// </summary>
    private async ValueTask<TagRecord?> AdoptSharedTagAsync(Route route, string tag, TagRecord? local, CancellationToken cancellationToken)
    {
        if (await _coordination.GetTagAsync(route.Upstream.Name, route.Repository, tag, cancellationToken).ConfigureAwait(false) is not { } shared
            || (local is not null && shared.FetchedAt <= local.FetchedAt))
        {
            return local;
        }

        await _cache.PutTagAsync(route.Upstream.Name, route.Repository, tag, shared, digestChanged: local?.Digest != shared.Digest, cancellationToken).ConfigureAwait(false);
        return shared;
    }

    /// <summary>
    /// Records a tag as seen upstream now, here and for the other replicas (once the manifest is in the shared
    /// store, where they will look for it).
    /// </summary>
    private async ValueTask PutTagAsync(Route route, string tag, TagRecord record, bool digestChanged)
    {
        await _cache.PutTagAsync(route.Upstream.Name, route.Repository, tag, record, digestChanged, _stopping).ConfigureAwait(false);
        if (_coordination.IsShared)
        {
            if (_cache.Shared is { } shared)
            {
                await shared.UploadOf(record.Digest).ConfigureAwait(false);
            }

            await _coordination.PutTagAsync(route.Upstream.Name, route.Repository, tag, record, _stopping).ConfigureAwait(false);
        }
    }

    private Task<ManifestResult> SharedAsync<TState>(Route route, string reference, Func<TState, Task<ManifestResult>> work, TState state, CancellationToken cancellationToken)
    {
        var key = string.Concat(route.Upstream.Name, "\n", route.Repository, "\n", reference);
        return _exchanges.RunAsync(key, work, state, cancellationToken);
    }

    private async Task<ManifestResult> RevalidateAsync(Route route, string tag, TagRecord? cached)
    {
        if (cached is not null)
        {
            using var head = await route.Upstream.SendAsync(
                new UpstreamRequest(HttpMethod.Head, route.Repository, "manifests/" + tag) { Accept = MediaTypes.ManifestAccept }, _stopping).ConfigureAwait(false);
            if (head.IsSuccess)
            {
                if (Digest.TryParse(HeaderValue(head.Message!, "Docker-Content-Digest"), out var current) && current == cached.Digest)
                {
                    // Confirmed: the index learns the time; the file keeps the digest it already has.
                    await PutTagAsync(route, tag, cached with { FetchedAt = _time.GetUtcNow() }, digestChanged: false).ConfigureAwait(false);
                    return await FromCacheAsync(route, ManifestStatus.Hit, cached, null).ConfigureAwait(false);
                }
            }
            else if (head.Outcome == UpstreamOutcome.NotFound && _honourNotFound)
            {
                return await DeletedAsync(route, tag, head).ConfigureAwait(false);
            }
            else if (head.Outcome != UpstreamOutcome.NotFound)
            {
                // Unreachable, marked down, 5xx, 429, 401/403, 4xx, redirect loops, HTML: serve what the cache holds.
                return await FromCacheAsync(route, ManifestStatus.Stale, cached, head).ConfigureAwait(false);
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
                return await DeletedAsync(route, reference, response).ConfigureAwait(false);
            }

            if (cached is not null)
            {
                return await FromCacheAsync(route, ManifestStatus.Stale, cached, response).ConfigureAwait(false);
            }

            var status = response.Outcome switch
            {
                UpstreamOutcome.NotFound => ManifestStatus.NotFound,
                UpstreamOutcome.Unauthorized or UpstreamOutcome.Forbidden => ManifestStatus.Denied,
                UpstreamOutcome.Failed => ManifestStatus.Invalid,
                _ => ManifestStatus.Unavailable,
            };
            return ManifestResult.Failure(status, response.Outcome, response.RetryAfter, response.Detail);
        }

        var content = response.Message!.Content;
        byte[] bytes;
        using (var bodyDeadline = new CancellationTokenSource(route.Upstream.Options.RequestTimeout, _time))
        using (var bodyToken = CancellationTokenSource.CreateLinkedTokenSource(_stopping, bodyDeadline.Token))
        {
            try
            {
                // A manifest is small: a body that trickles past the request timeout is treated as no answer.
                bytes = await ReadLimitedAsync(content, MaxManifestSize, bodyToken.Token).ConfigureAwait(false);
            }
            catch (InvalidDataException ex)
            {
                return await RejectedAsync(route, reference, cached, ex.Message).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException
                || (ex is OperationCanceledException && bodyDeadline.IsCancellationRequested && !_stopping.IsCancellationRequested))
            {
                var detail = ex is OperationCanceledException ? "the manifest body did not arrive in time" : "the manifest body broke off";
                await route.Upstream.ReportBodyFailureAsync(transport: true, detail).ConfigureAwait(false);
                return cached is not null
                    ? await FromCacheAsync(route, ManifestStatus.Stale, cached, new UpstreamResponse(UpstreamOutcome.Unreachable, null, detail)).ConfigureAwait(false)
                    : ManifestResult.Failure(ManifestStatus.Unavailable, UpstreamOutcome.Unreachable, null, detail);
            }
        }

        var digest = expected ?? (Digest.TryParse(HeaderValue(response.Message, "Docker-Content-Digest"), out var announced) && announced.IsSha512
            ? announced
            : Digest.ComputeSha256(bytes));
        if (!digest.Matches(bytes))
        {
            _metrics.DigestMismatch(route.Upstream.Name);
            await route.Upstream.ReportBodyFailureAsync(transport: false, "a manifest that does not hash to its digest").ConfigureAwait(false);
            return await RejectedAsync(route, reference, cached, "digest mismatch: the manifest does not hash to " + digest.Value).ConfigureAwait(false);
        }

        var mediaType = ManifestMediaType.Resolve(MediaTypes.StripParameters(content.Headers.ContentType?.ToString()), bytes);
        if (!ManifestDocument.IsValid(bytes, mediaType))
        {
            return await RejectedAsync(route, reference, cached, $"the answer is not a manifest of type {mediaType}").ConfigureAwait(false);
        }

        // A disk that refuses the write does not stop the answer: it is served from memory, and the cache is
        // reported degraded (by the cache itself).
        await _cache.PutManifestAsync(digest, bytes, mediaType, route.Upstream.Origin, _stopping).ConfigureAwait(false);
        if (expected is null)
        {
            await PutTagAsync(route, reference, new TagRecord(digest, mediaType, bytes.Length, _time.GetUtcNow()), digestChanged: cached?.Digest != digest).ConfigureAwait(false);
        }

        Log.ManifestFetched(_logger, route.Upstream.Name, route.Repository, reference, digest.Value, bytes.Length, _time.GetElapsedTime(started).TotalMilliseconds);
        return new ManifestResult(ManifestStatus.Fetched, digest, mediaType, bytes);
    }

    /// <summary>The cached manifest a tag points to, as <paramref name="status"/>; when it is gone after all, the upstream's failure.</summary>
    private async ValueTask<ManifestResult> FromCacheAsync(Route route, ManifestStatus status, TagRecord cached, UpstreamResponse? response)
    {
        if (await TryCachedAsync(route, cached.Digest, _stopping).ConfigureAwait(false) is { } manifest)
        {
            return new ManifestResult(status, cached.Digest, manifest.MediaType, manifest.Content)
            {
                UpstreamOutcome = response?.Outcome ?? UpstreamOutcome.Success,
                Detail = response?.Detail,
            };
        }

        var outcome = response?.Outcome ?? UpstreamOutcome.Unreachable;
        return ManifestResult.Failure(outcome == UpstreamOutcome.NotFound ? ManifestStatus.NotFound : ManifestStatus.Unavailable, outcome, response?.RetryAfter, response?.Detail);
    }

    /// <summary>An upstream body that is not a usable manifest: never stored; the cached copy, if any, is served stale.</summary>
    private async ValueTask<ManifestResult> RejectedAsync(Route route, string reference, TagRecord? cached, string reason)
    {
        Log.ManifestInvalid(_logger, route.Upstream.Name, route.Repository, reference, reason);
        return cached is not null
            ? await FromCacheAsync(route, ManifestStatus.Stale, cached, new UpstreamResponse(UpstreamOutcome.Failed, null, reason)).ConfigureAwait(false)
            : ManifestResult.Failure(ManifestStatus.Invalid, UpstreamOutcome.Failed, null, reason);
    }

    /// <summary>The upstream no longer has a cached tag, and the policy says to believe it: the mirror forgets the tag.</summary>
    private async ValueTask<ManifestResult> DeletedAsync(Route route, string tag, UpstreamResponse response)
    {
        await _cache.DeleteTagAsync(route.Upstream.Name, route.Repository, tag, _stopping).ConfigureAwait(false);
        Log.TagDeleted(_logger, route.Upstream.Name, route.Repository, tag);
        return ManifestResult.Failure(ManifestStatus.NotFound, response.Outcome, null, response.Detail);
    }

    private static string? HeaderValue(HttpResponseMessage message, string name) =>
        message.Headers.NonValidated.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, int limit, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > limit)
        {
            throw new InvalidDataException($"manifest of {content.Headers.ContentLength} bytes exceeds {limit}");
        }

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
            throw new IOException($"manifest body ended after {buffer.WrittenCount} of {length} bytes");
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
