using System.Collections.Concurrent;
using MirrorProxy.Cache;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Upstream;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.PullThrough;

/// <summary>
/// Blob misses: one upstream download per digest, whatever the number of clients asking (they join the running
/// ingest), run on the application's lifetime rather than any client's, and published only once verified.
/// </summary>
internal sealed partial class BlobService
{
    private readonly ConcurrentDictionary<string, BlobIngest> _active = new(StringComparer.Ordinal);
    private readonly MirrorCache _cache;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobService> _logger;
    private readonly CancellationToken _stopping;
    private readonly long? _maxSize;

    public BlobService(
        MirrorCache cache, MirrorMetrics metrics, TimeProvider time, Microsoft.Extensions.Options.IOptions<Hosting.MirrorProxyOptions> options,
        IHostApplicationLifetime lifetime, ILogger<BlobService> logger)
    {
        _maxSize = options.Value.Cache.MaxSize?.Bytes;
        _cache = cache;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _stopping = lifetime.ApplicationStopping;
    }

    /// <summary>
    /// Joins the download of <paramref name="digest"/>, starting it when none runs. The caller holds a reader
    /// reference on the returned ingest and must call <see cref="BlobIngest.ReleaseReader"/>.
    /// </summary>
    public BlobIngest JoinOrStart(Digest digest, UpstreamRegistry upstream, string repository, out bool coalesced)
    {
        while (true)
        {
            if (_active.TryGetValue(digest.Value, out var running))
            {
                if (running.TryAddReader())
                {
                    coalesced = true;
                    return running;
                }

                // Over and closed: it is leaving the table; look again.
                _active.TryRemove(new KeyValuePair<string, BlobIngest>(digest.Value, running));
                continue;
            }

            var ingest = new BlobIngest(digest, _cache.Store.NewTempPath());
            ingest.TryAddReader();
            if (_active.TryAdd(digest.Value, ingest))
            {
                _ = Task.Run(() => RunAsync(ingest, upstream, repository), CancellationToken.None);
                coalesced = false;
                return ingest;
            }
        }
    }

    /// <summary>The download in progress for a digest, if any (for HEAD requests).</summary>
    public BlobIngest? TryGetActive(Digest digest) => _active.TryGetValue(digest.Value, out var ingest) ? ingest : null;

    private async Task RunAsync(BlobIngest ingest, UpstreamRegistry upstream, string repository)
    {
        var digest = ingest.Digest;
        var started = _time.GetTimestamp();
        try
        {
            if (_cache.Store.TryStat(digest, out var cachedSize))
            {
                // Published by a download that finished between the caller's cache lookup and this one.
                ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, cachedSize, null, null) { AlreadyCached = true });
                ingest.Complete();
                return;
            }

            using var response = await upstream.SendAsync(
                new UpstreamRequest(HttpMethod.Get, repository, "blobs/" + digest.Value) { IsBlob = true }, _stopping).ConfigureAwait(false);
            if (!response.IsSuccess)
            {
                ingest.SetStarted(new IngestStart(response.Outcome, null, response.RetryAfter, response.Detail));
                ingest.Fail();
                return;
            }

            ingest.OpenFile();
            ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, response.Message!.Content.Headers.ContentLength, null, null));
            await using var body = await response.Message.Content.ReadAsStreamAsync(_stopping).ConfigureAwait(false);
            var error = await ingest.CopyAsync(body, upstream.Options.BlobIdleTimeout, _time, bytes => _metrics.BytesFetched(bytes, upstream.Name), _stopping).ConfigureAwait(false);
            if (error is null && ingest.Written > _maxSize)
            {
                // Larger than the whole budget: it has been served, but keeping it would evict everything else.
                ingest.Complete();
                File.Delete(ingest.TempPath);
                Log.BlobNotKept(_logger, upstream.Name, repository, digest.Value, ingest.Written, _maxSize.Value);
                return;
            }

            if (error is null)
            {
                _cache.PublishBlob(ingest.TempPath, digest, ingest.Written);
                ingest.Complete();
                Log.BlobFetched(_logger, upstream.Name, repository, digest.Value, ingest.Written, _time.GetElapsedTime(started).TotalMilliseconds);
                return;
            }

            if (error.StartsWith("digest mismatch", StringComparison.Ordinal))
            {
                _metrics.DigestMismatch(upstream.Name);
            }

            Log.BlobFailed(_logger, upstream.Name, repository, digest.Value, ingest.Written, error);
            Discard(ingest);
        }
        catch (Exception ex)
        {
            // Shutdown, a full disk, a vanished directory: the download is abandoned and nothing is published.
            Log.BlobFailed(_logger, upstream.Name, repository, digest.Value, ingest.Written, ex.Message);
            ingest.SetStarted(new IngestStart(UpstreamOutcome.Unreachable, null, null, ex.Message));
            Discard(ingest);
        }
        finally
        {
            _active.TryRemove(new KeyValuePair<string, BlobIngest>(digest.Value, ingest));
            ingest.ReleaseReader();
        }
    }

    private static void Discard(BlobIngest ingest)
    {
        ingest.Fail();
        try
        {
            File.Delete(ingest.TempPath);
        }
        catch (IOException)
        {
            // tmp/ is emptied at the next start.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Information, "Fetched blob {Digest} of {Repository} from {Upstream}: {Bytes} bytes in {ElapsedMs:0} ms")]
        public static partial void BlobFetched(ILogger logger, string upstream, string repository, string digest, long bytes, double elapsedMs);

        [LoggerMessage(3003, LogLevel.Warning, "Blob {Digest} of {Repository} from {Upstream} ({Bytes} bytes) is larger than the cache budget of {Budget} bytes: served, not kept")]
        public static partial void BlobNotKept(ILogger logger, string upstream, string repository, string digest, long bytes, long budget);

        [LoggerMessage(3002, LogLevel.Warning, "Blob {Digest} of {Repository} from {Upstream} discarded after {Bytes} bytes: {Reason}")]
        public static partial void BlobFailed(ILogger logger, string upstream, string repository, string digest, long bytes, string reason);
    }
}
