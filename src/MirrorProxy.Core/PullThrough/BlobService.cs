using System.Collections.Concurrent;
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

/// <summary>Where a blob answer comes from, or why there is none.</summary>
internal enum BlobStatus
{
    /// <summary>From the cache.</summary>
    Hit,
    /// <summary>From a download another request started.</summary>
    Joined,
    /// <summary>From a download this request started.</summary>
    Started,
    /// <summary>Relayed from the upstream without being kept.</summary>
    Relayed,
    /// <summary>The upstream says it does not exist.</summary>
    NotFound,
    /// <summary>The upstream refused access.</summary>
    Denied,
    /// <summary>The upstream cannot answer (down, offline, rate-limited, 5xx).</summary>
    Unavailable,
    /// <summary>The upstream answered with something unusable.</summary>
    Unusable,
}

/// <summary>A blob answer: its source (none for HEAD), its length, and the upstream's word when it failed.</summary>
internal readonly record struct BlobResult(BlobStatus Status, BlobBody? Body, long? Length)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public string? Detail { get; init; }

    public bool Found => Status is BlobStatus.Hit or BlobStatus.Joined or BlobStatus.Started or BlobStatus.Relayed;
}

/// <summary>
/// Blobs by digest: from the cache when it holds them whole (small ones from memory, hashed when loaded; others
/// from their file, whose size is checked when opened), else from one upstream download per digest, whatever the
/// number of clients asking (they join it), run as tracked background work rather than on any client's time, and
/// stored only once verified. A damaged cached object is quarantined and fetched again. A blob the cache will
/// not keep (larger than it may hold, or a disk that refuses writes) is relayed, verified as it passes.
/// </summary>
internal sealed partial class BlobService
{
    /// <summary>After a cache write failed, downloads relay instead of writing for this long, then try again.</summary>
    private static readonly TimeSpan RelayAfterWriteFailure = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, BlobIngest> _active = new(StringComparer.Ordinal);
    private readonly SingleFlight<(CachedContentStatus, ContentEntry)> _verifications = new();
    private readonly MirrorCache _cache;
    private readonly DownloadCoordinator _downloads;
    private readonly CacheBudget _budget;
    private readonly BackgroundWork _background;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobService> _logger;

    public BlobService(
        MirrorCache cache, DownloadCoordinator downloads, CacheBudget budget, BackgroundWork background, MirrorMetrics metrics, TimeProvider time, ILogger<BlobService> logger)
    {
        _cache = cache;
        _downloads = downloads;
        _budget = budget;
        _background = background;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    /// <summary>Downloads running now.</summary>
    public int ActiveDownloads => _active.Count;

    /// <summary>
    /// Resolves a blob for a GET (with a body to send, which the caller disposes) or a HEAD (length only): hit,
    /// join, start, or relay.
    /// </summary>
    public ValueTask<BlobResult> GetAsync(Route route, Digest digest, bool headOnly, CancellationToken cancellationToken) =>
        GetAsync(new BlobOrigin(route.Upstream, route.Repository), digest, headOnly, cancellationToken);

    /// <summary>The same, for a blob any upstream can serve by digest (a registry's repository, a Helm chart's URL).</summary>
    public async ValueTask<BlobResult> GetAsync(BlobOrigin route, Digest digest, bool headOnly, CancellationToken cancellationToken)
    {
        if (await TryCachedAsync(route, digest, headOnly, cancellationToken).ConfigureAwait(false) is { } hit)
        {
            return hit;
        }

        if (headOnly)
        {
            return await HeadUncachedAsync(route, digest, cancellationToken).ConfigureAwait(false);
        }

        if (_cache.Health.FailedWithin(RelayAfterWriteFailure))
        {
            return await RelayAsync(route, digest, cancellationToken).ConfigureAwait(false);
        }

        var ingest = JoinOrStart(digest, route, out var joined);
        var handedOver = false;
        try
        {
            var start = await ingest.Started.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (start.AlreadyCached)
            {
                // The cache holds it, unless that copy turns out damaged (and cannot be removed) or is evicted
                // meanwhile: then the upstream's copy is relayed.
                return await TryCachedAsync(route, digest, headOnly: false, cancellationToken).ConfigureAwait(false)
                    ?? await RelayAsync(route, digest, cancellationToken).ConfigureAwait(false);
            }

            if (start.NotKept)
            {
                return await RelayAsync(route, digest, cancellationToken).ConfigureAwait(false);
            }

            if (start.Outcome != UpstreamOutcome.Success)
            {
                return Failure(start.Outcome, start.RetryAfter, start.Detail);
            }

            handedOver = true;
            return new BlobResult(joined ? BlobStatus.Joined : BlobStatus.Started, new IngestBlobBody(ingest), start.Length);
        }
        finally
        {
            if (!handedOver)
            {
                ingest.ReleaseReader();
            }
        }
    }

    /// <summary>
    /// The cached blob with a body to send, or null when the cache does not hold it whole; never downloads. Private
    /// content is shown as for any request (<see cref="BlobStatus.NotFound"/> when the route's upstream cannot show it holds it).
    /// </summary>
    public ValueTask<BlobResult?> GetCachedAsync(BlobOrigin route, Digest digest, CancellationToken cancellationToken) =>
        TryCachedAsync(route, digest, headOnly: false, cancellationToken);

    /// <summary>
    /// The cached blob, or null when the cache does not hold it whole (a damaged copy is quarantined on the way).
    /// Content a private upstream brought in is served through another upstream's route only once that upstream
    /// has shown it holds it too; when it cannot, the answer is 404, as if it were not cached.
    /// </summary>
    private async ValueTask<BlobResult?> TryCachedAsync(BlobOrigin route, Digest digest, bool headOnly, CancellationToken cancellationToken)
    {
        if (_cache.Hot.TryGet(digest.Value, out var hot) && IsVisible(hot.Info, route.Upstream.Name))
        {
            _cache.Touch(digest, hot.Info);
            return new BlobResult(BlobStatus.Hit, headOnly ? null : new MemoryBlobBody(hot.Content), hot.Content.Length);
        }

        if (await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is not { } entry)
        {
            return null;
        }

        entry = await _cache.ResolveAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (!IsVisible(entry, route.Upstream.Name))
        {
            using var proof = await route.Upstream.SendBlobAsync(HttpMethod.Head, route.Location, digest, cancellationToken).ConfigureAwait(false);
            if (!proof.IsSuccess)
            {
                return new BlobResult(BlobStatus.NotFound, null, null)
                {
                    UpstreamOutcome = UpstreamOutcome.NotFound,
                    Detail = $"upstream {route.Upstream.Name} has not shown that it holds this blob",
                };
            }

            entry = await _cache.VouchAsync(digest, entry, route.Upstream.Origin, cancellationToken).ConfigureAwait(false);
        }

        if (entry.Size <= _cache.Hot.MaxObjectSize)
        {
            var (status, content) = await _cache.ReadSmallAsync(digest, entry, cancellationToken).ConfigureAwait(false);
            if (status != CachedContentStatus.Ok)
            {
                return null;
            }

            _cache.Touch(digest, entry);
            return new BlobResult(BlobStatus.Hit, headOnly ? null : new MemoryBlobBody(content!), content!.Length);
        }

        if (entry.Kind == ContentKind.FoundBlob)
        {
            // Found in the files after a crash or with a lost index: only a hash tells a whole file from one cut short.
            var (verified, resolved) = await _verifications.RunAsync(
                digest.Value, static s => s.Cache.VerifyAsync(s.Digest, s.Entry, s.Stopping).AsTask(), (Cache: _cache, Digest: digest, Entry: entry, Stopping: _background.Stopping),
                cancellationToken).ConfigureAwait(false);
            if (verified != CachedContentStatus.Ok)
            {
                return null;
            }

            entry = resolved;
        }

        var (openStatus, reader) = await _cache.OpenAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (openStatus != CachedContentStatus.Ok)
        {
            return null;
        }

        _cache.Touch(digest, entry);
        if (headOnly)
        {
            reader!.Dispose();
            return new BlobResult(BlobStatus.Hit, null, entry.Size);
        }

        return new BlobResult(BlobStatus.Hit, new StoredBlobBody(reader!), entry.Size);
    }

    /// <summary>Whether cached content may be served through this route without further proof.</summary>
    internal static bool IsVisible(in ContentEntry entry, in Route route) => IsVisible(entry, route.Upstream.Name);

    /// <summary>Whether cached content may be served through the routes of <paramref name="upstream"/> (an upstream's or a Helm repository's origin name) without further proof.</summary>
    internal static bool IsVisible(in ContentEntry entry, string upstream) =>
        entry.Kind != ContentKind.Unknown && (entry.Origins.IsPublic || entry.Origins.Contains(upstream));

    /// <summary>HEAD of a blob the cache lacks: the download in progress knows its length, else the upstream is asked.</summary>
    private async ValueTask<BlobResult> HeadUncachedAsync(BlobOrigin route, Digest digest, CancellationToken cancellationToken)
    {
        if (_active.TryGetValue(digest.Value, out var running) && running.Length is { } length && !running.IsFailed)
        {
            return new BlobResult(BlobStatus.Joined, null, length);
        }

        using var response = await route.Upstream.SendBlobAsync(HttpMethod.Head, route.Location, digest, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccess)
        {
            return Failure(response.Outcome, response.RetryAfter, response.Detail);
        }

        return response.Message!.Content.Headers.ContentLength is { } size
            ? new BlobResult(BlobStatus.Started, null, size)
            : Failure(UpstreamOutcome.Failed, null, "the upstream's HEAD answer has no Content-Length");
    }

    /// <summary>Streams the blob from the upstream to this one client without keeping it.</summary>
    private async ValueTask<BlobResult> RelayAsync(BlobOrigin route, Digest digest, CancellationToken cancellationToken)
    {
        var response = await route.Upstream.SendBlobAsync(HttpMethod.Get, route.Location, digest, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccess)
        {
            response.Dispose();
            return Failure(response.Outcome, response.RetryAfter, response.Detail);
        }

        var body = await response.Message!.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return new BlobResult(BlobStatus.Relayed, new RelayBlobBody(response, body, digest, route.Upstream.Options.BlobIdleTimeout, _time), response.Message.Content.Headers.ContentLength);
    }

    private static BlobResult Failure(UpstreamOutcome outcome, TimeSpan? retryAfter, string? detail) =>
        new(Classify(outcome), null, null) { UpstreamOutcome = outcome, RetryAfter = retryAfter, Detail = detail };

    internal static BlobStatus Classify(UpstreamOutcome outcome) => outcome switch
    {
        UpstreamOutcome.NotFound => BlobStatus.NotFound,
        UpstreamOutcome.Unauthorized or UpstreamOutcome.Forbidden => BlobStatus.Denied,
        UpstreamOutcome.Failed => BlobStatus.Unusable,
        _ => BlobStatus.Unavailable,
    };

    /// <summary>
    /// Joins the download of <paramref name="digest"/>, starting it when none runs. The caller holds a reader
    /// reference on the returned ingest and must release it.
    /// </summary>
    private BlobIngest JoinOrStart(Digest digest, BlobOrigin route, out bool joined)
    {
        while (true)
        {
            if (_active.TryGetValue(digest.Value, out var running))
            {
                if (running.TryAddReader())
                {
                    joined = true;
                    return running;
                }

                // Over and closed: it is leaving the table; look again.
                _active.TryRemove(new KeyValuePair<string, BlobIngest>(digest.Value, running));
                continue;
            }

            var ingest = new BlobIngest(digest);
            ingest.TryAddReader();
            if (_active.TryAdd(digest.Value, ingest))
            {
                _background.Run("download " + digest.Value, static (s, ct) => s.Self.RunAsync(s.Ingest, s.Route, ct), (Self: this, Ingest: ingest, Route: route));
                joined = false;
                return ingest;
            }
        }
    }

    private async Task RunAsync(BlobIngest ingest, BlobOrigin route, CancellationToken stopping)
    {
        var digest = ingest.Digest;
        var upstream = route.Upstream;
        var started = _time.GetTimestamp();
        var announced = 0L;
        var outcome = DownloadOutcome.NoAnswer;
        Lease? lease = null;
        try
        {
            if (await _cache.LookupAsync(digest, stopping).ConfigureAwait(false) is not null)
            {
                // Stored by a download that finished between the caller's cache lookup and this one.
                ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, null, null, null) { AlreadyCached = true });
                outcome = DownloadOutcome.Stored;
                return;
            }

            // Replicas sharing a store download a blob once: wait for another replica's download, or claim it.
            (var claim, lease) = await _downloads.ClaimAsync(digest, stopping).ConfigureAwait(false);
            if (claim == DownloadClaim.StoredElsewhere)
            {
                ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, null, null, null) { AlreadyCached = true });
                outcome = DownloadOutcome.Stored;
                return;
            }

            using var response = await upstream.SendBlobAsync(HttpMethod.Get, route.Location, digest, stopping).ConfigureAwait(false);
            if (!response.IsSuccess)
            {
                ingest.SetStarted(new IngestStart(response.Outcome, null, response.RetryAfter, response.Detail));
                return;
            }

            var length = response.Message!.Content.Headers.ContentLength;
            if (length > _budget.MaxBlobSize)
            {
                Log.BlobNotKept(_logger, upstream.Name, route.Location, digest.Value, length.Value, _budget.MaxBlobSize);
                ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, length, null, null) { NotKept = true });
                return;
            }

            var (status, writer) = await _cache.BeginWriteAsync(digest, length, stopping).ConfigureAwait(false);
            if (writer is null)
            {
                Log.BlobRelayed(_logger, digest.Value, status);
                ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, length, null, null) { NotKept = true });
                return;
            }

            ingest.Attach(writer);
            announced = length ?? 0;
            _budget.DownloadStarted(announced);
            ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, length, null, null));

            await using var body = await response.Message.Content.ReadAsStreamAsync(stopping).ConfigureAwait(false);
            var limits = new DownloadLimits(upstream.Options.BlobIdleTimeout, upstream.Options.MinBlobThroughput.Bytes, upstream.Options.MinBlobThroughputWindow,
                _budget.MaxBlobSize);
            outcome = await ingest.CopyAsync(body, limits, _time, bytes => _metrics.BytesFetched(bytes, upstream.Name), stopping).ConfigureAwait(false);
            if (outcome == DownloadOutcome.Running)
            {
                outcome = await _cache.CommitAsync(writer, mediaType: null, upstream.Origin, stopping).ConfigureAwait(false) switch
                {
                    StorageStatus.Ok or StorageStatus.AlreadyExists => DownloadOutcome.Stored,
                    StorageStatus.Mismatch => DownloadOutcome.DigestMismatch,
                    _ => DownloadOutcome.StorageFailed,
                };
            }

            if (outcome == DownloadOutcome.Stored)
            {
                Log.BlobFetched(_logger, upstream.Name, route.Location, digest.Value, ingest.Written, _time.GetElapsedTime(started).TotalMilliseconds);
            }
            else
            {
                await ReportFailureAsync(upstream, route.Location, digest, ingest, outcome).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            outcome = DownloadOutcome.Cancelled;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            outcome = DownloadOutcome.BrokenOff;
            Log.BlobFailed(_logger, upstream.Name, route.Location, digest.Value, ingest.Written, outcome);
        }
        finally
        {
            // Whatever happened, nobody waits for an answer that never comes.
            ingest.SetStarted(new IngestStart(UpstreamOutcome.Unreachable, null, null, outcome == DownloadOutcome.Cancelled ? "the mirror is stopping" : "the download failed"));
            ingest.Finish(outcome);
            _budget.DownloadEnded(announced);
            _active.TryRemove(new KeyValuePair<string, BlobIngest>(digest.Value, ingest));
            ingest.ReleaseReader();
            if (lease is not null)
            {
                // Held until the copy is in the shared store, where the replicas waiting for it look.
                if (outcome == DownloadOutcome.Stored && _cache.Shared is { } shared)
                {
                    await shared.UploadOf(digest).ConfigureAwait(false);
                }

                await lease.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async ValueTask ReportFailureAsync(IBlobUpstream upstream, string repository, Digest digest, BlobIngest ingest, DownloadOutcome outcome)
    {
        Log.BlobFailed(_logger, upstream.Name, repository, digest.Value, ingest.Written, outcome);
        switch (outcome)
        {
            case DownloadOutcome.DigestMismatch:
                _metrics.DigestMismatch(upstream.Name);
                await upstream.ReportBodyFailureAsync(transport: false, "content that does not hash to its digest").ConfigureAwait(false);
                break;
            case DownloadOutcome.Stalled or DownloadOutcome.BrokenOff:
                await upstream.ReportBodyFailureAsync(transport: true, outcome == DownloadOutcome.Stalled ? "a blob body stalled" : "a blob body broke off").ConfigureAwait(false);
                break;
            case DownloadOutcome.TooSlow or DownloadOutcome.TooShort or DownloadOutcome.TooLong:
                await upstream.ReportBodyFailureAsync(transport: false, "a blob download failed: " + outcome).ConfigureAwait(false);
                break;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Information, "Fetched blob {Digest} of {Repository} from {Upstream}: {Bytes} bytes in {ElapsedMs:0} ms")]
        public static partial void BlobFetched(ILogger logger, string upstream, string repository, string digest, long bytes, double elapsedMs);

        [LoggerMessage(3003, LogLevel.Warning, "Blob {Digest} of {Repository} from {Upstream} ({Bytes} bytes) is larger than the cache keeps ({Limit} bytes): relayed, not kept")]
        public static partial void BlobNotKept(ILogger logger, string upstream, string repository, string digest, long bytes, long limit);

        [LoggerMessage(3002, LogLevel.Warning, "Blob {Digest} of {Repository} from {Upstream} discarded after {Bytes} bytes: {Outcome}")]
        public static partial void BlobFailed(ILogger logger, string upstream, string repository, string digest, long bytes, DownloadOutcome outcome);

        [LoggerMessage(3004, LogLevel.Warning, "Blob {Digest} relayed without being kept: the cache cannot write ({Status})")]
        public static partial void BlobRelayed(ILogger logger, string digest, StorageStatus status);
    }
}
