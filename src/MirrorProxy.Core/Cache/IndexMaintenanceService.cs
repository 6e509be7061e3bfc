using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// Keeps the index in step with the files and its disk use bounded: after a crash or with a lost index it walks
/// the files in the background at <c>Cache:RebuildRate</c> (the mirror serves meanwhile, checking every miss
/// against the files); it checkpoints the log on a timer and the hash index less often; it compacts the log when
/// it has doubled; and at a clean stop it takes the final checkpoint that lets the next start trust the index.
/// </summary>
internal sealed partial class IndexMaintenanceService : BackgroundService
{
    private readonly MirrorCache _cache;
    private readonly TimeProvider _time;
    private readonly CacheOptions _options;
    private readonly ILogger<IndexMaintenanceService> _logger;
    private readonly TaskCompletionSource _rebuilt = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IndexMaintenanceService(MirrorCache cache, TimeProvider time, IOptions<CacheOptions> options, ILogger<IndexMaintenanceService> logger)
    {
        _cache = cache;
        _time = time;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Completes when the index agrees with the files (at once after a clean stop).</summary>
    public Task Rebuilt => _rebuilt.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            if (_cache.IndexTrusted)
            {
                await _cache.LoadTotalsAsync().ConfigureAwait(false);
                _rebuilt.TrySetResult();
            }
            else
            {
                await RebuildAsync(stoppingToken).ConfigureAwait(false);
            }

            using var timer = new PeriodicTimer(_options.CheckpointInterval, _time);
            var lastIndexCheckpoint = _time.GetTimestamp();
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (_cache.Index.NeedsCompaction(_options.IndexCompactionMinimum.Bytes))
                {
                    await CompactAsync().ConfigureAwait(false);
                }

                var full = _time.GetElapsedTime(lastIndexCheckpoint) >= _options.IndexCheckpointInterval;
                await CheckpointAsync(full, stoppingToken).ConfigureAwait(false);
                if (full)
                {
                    lastIndexCheckpoint = _time.GetTimestamp();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// How long before the recovered checkpoint's time a file must have been written for the rebuild to take its
    /// index entry on trust: a commit's index entry follows the file's last write by its flush and rename, seconds
    /// on a slow disk, never minutes.
    /// </summary>
    internal static readonly TimeSpan CommitSlack = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Walks every stored object and tag file into the index, at a bounded rate, and recounts the totals. Content
    /// is immutable, so an entry already indexed with the file's size is left alone (it may carry a later access).
    /// After a crash the recovered checkpoint already holds every object committed before its time, so only files
    /// written since then (less <see cref="CommitSlack"/>) are looked up: at a million objects the look-ups, each a
    /// read of the index from disk, were most of the rebuild's work and time. A file the rule misses
    /// (the clock set back, or an entry dropped while its file stayed) is served and indexed at its first request,
    /// as content put behind the index's back always is; that request counts its bytes a second time, until the
    /// next rebuild recounts.
    /// </summary>
    internal async Task RebuildAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var index = _cache.Index;
        var lookUpSince = await _cache.LoadAgreedAtAsync().ConfigureAwait(false) is { } agreed ? agreed - CommitSlack : DateTimeOffset.MinValue;
        long objects = 0, bytes = 0, added = 0;
        await foreach (var stored in _cache.Store.EnumerateAsync(namedSince: lookUpSince, fromShard: null, cancellationToken).ConfigureAwait(false))
        {
            if (stored.IsNamed && stored.LastWrite >= lookUpSince
                && (await index.GetContentAsync(stored.Digest).ConfigureAwait(false) is not { } known || known.Size != stored.Size))
            {
                index.PutContent(stored.Digest, new ContentEntry(stored.Size, ContentKind.Unknown, null, stored.LastWrite));
                added++;
            }

            objects++;
            bytes += stored.Size;
            if (objects % 1024 == 0)
            {
                await PaceAsync(started, objects, cancellationToken).ConfigureAwait(false);
            }
        }

        var tags = 0;
        await foreach (var (upstream, repository, tag, record) in _cache.EnumerateTagFilesAsync(cancellationToken).ConfigureAwait(false))
        {
            var indexed = await index.GetTagAsync(upstream, repository, tag).ConfigureAwait(false);
            if (indexed is null || indexed.Digest != record.Digest || indexed.FetchedAt < record.FetchedAt)
            {
                index.PutTag(upstream, repository, tag, record);
            }

            if (++tags % 1024 == 0)
            {
                await PaceAsync(started, objects + tags, cancellationToken).ConfigureAwait(false);
            }
        }

        _cache.RebuildCompleted(bytes, objects);
        _rebuilt.TrySetResult();
        Log.IndexRebuilt(_logger, objects, added, tags, _time.GetElapsedTime(started).TotalMilliseconds);
        await CheckpointAsync(full: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sleeps as long as needed to stay at or below <c>Cache:RebuildRate</c> items a second.</summary>
    private async Task PaceAsync(long started, long items, CancellationToken cancellationToken)
    {
        var due = TimeSpan.FromSeconds((double)items / _options.RebuildRate);
        var ahead = due - _time.GetElapsedTime(started);
        if (ahead > TimeSpan.FromMilliseconds(1))
        {
            await Task.Delay(ahead, _time, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await Task.Yield();
        }
    }

    private async Task CompactAsync()
    {
        var started = _time.GetTimestamp();
        var compaction = await _cache.Index.CompactAsync(wholeLog: false, CancellationToken.None).ConfigureAwait(false);
        if (compaction.Outcome == IndexCompactionOutcome.Compacted)
        {
            Log.Compacted(_logger, compaction.Before, compaction.After, _time.GetElapsedTime(started).TotalMilliseconds);
        }
        else
        {
            Log.CompactionFailed(_logger, compaction.Failure!);
        }
    }

    private async Task CheckpointAsync(bool full, CancellationToken cancellationToken)
    {
        try
        {
            _cache.SaveTotals();
            await _cache.Index.CheckpointAsync(full, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The index is rebuildable from the files; a failed checkpoint costs start-up time, not data.
            Log.CheckpointFailed(_logger, ex);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _cache.SaveTotals();
            if (Rebuilt.IsCompleted)
            {
                await _cache.Index.CloseCleanlyAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                // Stopped mid-rebuild: the index does not agree with the files yet, so the next start rebuilds again.
                await _cache.Index.CheckpointAsync(full: true, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.CheckpointFailed(_logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2010, LogLevel.Warning, "Cache index checkpoint failed")]
        public static partial void CheckpointFailed(ILogger logger, Exception exception);

        [LoggerMessage(2003, LogLevel.Information, "Cache index rebuilt from the files: {Objects} objects ({Added} added), {Tags} tags in {ElapsedMs:0} ms")]
        public static partial void IndexRebuilt(ILogger logger, long objects, long added, int tags, double elapsedMs);

        [LoggerMessage(2011, LogLevel.Information, "Cache index log compacted from {Before} to {After} bytes in {ElapsedMs:0} ms")]
        public static partial void Compacted(ILogger logger, long before, long after, double elapsedMs);

        [LoggerMessage(2012, LogLevel.Warning, "Cache index compaction failed: {Reason}")]
        public static partial void CompactionFailed(ILogger logger, string reason);
    }
}
