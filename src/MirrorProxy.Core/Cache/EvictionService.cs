using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// Keeps the cache within its budget by deleting unpinned content, least recently used first, in the background.
/// A pass runs when new content pushes the cache over budget and on a timer.
/// <para>
/// Victims are found by one sequential scan of the index log into <see cref="EvictionCandidates"/>, which keeps the
/// oldest entries whose sizes add up to what must be freed, rather than by a catalog of every object in memory: a
/// scanned record costs no allocation, a candidate 96 bytes, and a scan holds at most
/// <see cref="EvictionCandidates.MemoryBudget"/> of them whatever the size of the cache. The order is least recently
/// used at the time of the scan (exact but for objects used since the last compaction, see
/// <see cref="EvictionCandidates"/>); when what must be freed needs more candidates than that memory holds, a
/// pass takes the oldest that fit and the next scan continues from there (up to <see cref="MaxScans"/> scans a
/// pass). A scan costs one read of the index log (kept within about twice its live size by compaction); a pass runs
/// only when the cache is over budget, and frees down to nine tenths of it, so passes are rare.
/// </para>
/// <para>
/// Deleting a file is a journaled metadata update that waits on the disk far longer than it uses the CPU (about a
/// millisecond on a busy virtual disk, for tens of microseconds of CPU), so victims are deleted
/// <see cref="DeleteConcurrency"/> at a time, oldest first. Pins are checked again before each delete (one may have
/// been added since the scan); an object used since the scan is still deleted if it was chosen, and fetched again
/// when next asked for.
/// </para>
/// Deleting a file a client is reading does not disturb that client (the open handle keeps the data); downloads
/// in progress are not in the index yet and are never candidates.
/// </summary>
internal sealed partial class EvictionService : BackgroundService
{
    /// <summary>Most scans of the index one pass makes (each frees up to <see cref="EvictionCandidates.MaxCandidates"/> objects).</summary>
    internal const int MaxScans = 8;

    /// <summary>Deletes in flight at once (4 threads reach most of the disk's parallelism: 0.17 ms a file here, against 0.12 ms with 16).</summary>
    internal const int DeleteConcurrency = 4;

    private const double Headroom = 0.1;

    private readonly MirrorCache _cache;
    private readonly CacheBudget _budget;
    private readonly IPinnedContent _pins;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly CacheOptions _options;
    private readonly ILogger<EvictionService> _logger;
    private readonly SemaphoreSlim _signal = new(0, 1);

    /// <summary>Most candidates one scan holds (<see cref="EvictionCandidates.MaxCandidates"/>; fewer in tests).</summary>
    internal int MaxCandidates { get; set; } = EvictionCandidates.MaxCandidates;

    public EvictionService(
        MirrorCache cache, CacheBudget budget, IPinnedContent pins, MirrorMetrics metrics, TimeProvider time, IOptions<CacheOptions> options, ILogger<EvictionService> logger)
    {
        _cache = cache;
        _budget = budget;
        _pins = pins;
        _metrics = metrics;
        _time = time;
        _options = options.Value;
        _logger = logger;
        _cache.ContentAdded += OnContentAdded;
    }

    private void OnContentAdded()
    {
        if (_budget.IsOverBudget() && _signal.CurrentCount == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // A pass is already requested.
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_budget.IsBounded)
        {
            return;
        }

        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await EvictAsync(stoppingToken).ConfigureAwait(false);
                await _signal.WaitAsync(_options.EvictionInterval, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Evicts until within budget (less the headroom) or out of candidates. Returns the objects and bytes evicted.</summary>
    public async Task<(int Objects, long Bytes)> EvictAsync(CancellationToken cancellationToken)
    {
        if (!_budget.IsOverBudget())
        {
            return (0, 0);
        }

        var started = _time.GetTimestamp();
        var objects = 0;
        var bytes = 0L;
        var compacted = false;
        // The pass frees down to nine tenths of the budget, though the cache is back within it before that.
        var target = _budget.BytesToFree(Headroom);
        for (var scan = 0; scan < MaxScans; scan++)
        {
            // What is left of the pass's target, or more if downloads finished meanwhile.
            var toFree = Math.Max(target - bytes, _budget.BytesToFree(Headroom));
            if (toFree <= 0)
            {
                break;
            }

            var victims = await Task.Factory.StartNew(() => ChooseVictims(toFree), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
                .ConfigureAwait(false);
            var freedThisScan = 0L;
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = DeleteConcurrency, CancellationToken = cancellationToken };
            await Parallel.ForAsync(0, victims.Count, parallel, async (i, token) =>
            {
                if (Interlocked.Read(ref freedThisScan) >= toFree)
                {
                    return;
                }

                // The file store deletes synchronously: each delete goes to the back of the thread pool's global queue,
                // so requests queued meanwhile run first instead of waiting for the pool to add threads.
                await Task.Yield();
                var (digest, size) = victims[i];
                if (_pins.IsPinned(digest.Value))
                {
                    return;
                }

                var freed = await _cache.EvictAsync(digest, size, token).ConfigureAwait(false);
                if (freed > 0)
                {
                    Interlocked.Increment(ref objects);
                    Interlocked.Add(ref bytes, freed);
                    Interlocked.Add(ref freedThisScan, freed);
                    _metrics.Evicted(freed);
                }
            }).ConfigureAwait(false);

            if (victims.FellShort && !compacted)
            {
                // Old versions of objects deleted or used since the last compaction took the places of others, which
                // the scan then did not see again. With one version of each key in the log the next scan is exact.
                compacted = true;
                var compaction = await _cache.Index.CompactAsync(wholeLog: true, cancellationToken).ConfigureAwait(false);
                if (compaction.Outcome == IndexCompactionOutcome.Compacted)
                {
                    Log.CompactedToScanAgain(_logger, victims.Count, compaction.Before, compaction.After);
                    continue;
                }

                // The pass goes on without it, and a later one tries again.
                Log.CompactionFailed(_logger, compaction.Failure!);
            }

            if (freedThisScan == 0)
            {
                break; // everything left is pinned, in use, or within the grace period
            }
        }

        var elapsed = _time.GetElapsedTime(started).TotalMilliseconds;
        if (_budget.IsOverBudget())
        {
            Log.BudgetNotMet(_logger, objects, bytes, _cache.TotalBytes, _budget.InFlight, elapsed);
        }
        else if (objects > 0)
        {
            Log.Evicted(_logger, objects, bytes, _cache.TotalBytes, elapsed);
        }

        return (objects, bytes);
    }

    /// <summary>One scan of the index: the least recently used unpinned objects whose sizes add up to <paramref name="bytesToFree"/>, oldest first.</summary>
    internal EvictionVictims ChooseVictims(long bytesToFree)
    {
        var protectedSince = (_time.GetUtcNow() - _options.EvictionGracePeriod).ToUnixTimeMilliseconds();
        var pinned = new HashSet<(ulong, ulong)>();
        foreach (var digest in _pins.PinnedDigests)
        {
            if (Digest.TryParse(digest, out var parsed))
            {
                pinned.Add(EvictionCandidates.IdOf(parsed));
            }
        }

        var visitor = new Visitor(new EvictionCandidates(bytesToFree, protectedSince, pinned, MaxCandidates));
        _cache.Index.ScanContent(ref visitor);
        return visitor.Candidates.OldestFirst();
    }

    private readonly struct Visitor(EvictionCandidates candidates) : IContentVisitor
    {
        public EvictionCandidates Candidates => candidates;

        public void Visit(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccessMilliseconds) =>
            candidates.Offer(key, deleted, size, lastAccessMilliseconds);
    }

    public override void Dispose()
    {
        _cache.ContentAdded -= OnContentAdded;
        _signal.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(2020, LogLevel.Information, "Evicted {Objects} objects ({Bytes} bytes); cache now {Total} bytes; {ElapsedMs:0} ms")]
        public static partial void Evicted(ILogger logger, int objects, long bytes, long total, double elapsedMs);

        [LoggerMessage(2022, LogLevel.Information, "Eviction scan found {Victims} objects, short of its target, behind records changed since the last compaction: index log compacted ({Before} to {After} bytes), scanning again")]
        public static partial void CompactedToScanAgain(ILogger logger, int victims, long before, long after);

        [LoggerMessage(2023, LogLevel.Warning, "Eviction could not compact the index to scan again: {Reason}")]
        public static partial void CompactionFailed(ILogger logger, string reason);

        [LoggerMessage(2021, LogLevel.Warning, "Cache still over budget after evicting {Objects} objects ({Bytes} bytes): {Total} bytes cached and {InFlight} downloading are pinned or in use; {ElapsedMs:0} ms")]
        public static partial void BudgetNotMet(ILogger logger, int objects, long bytes, long total, long inFlight, double elapsedMs);
    }
}
