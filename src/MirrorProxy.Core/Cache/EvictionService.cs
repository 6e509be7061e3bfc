using System.Buffers.Binary;
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
/// Victims are found by one sequential scan of the index log, which keeps the oldest entries whose sizes add up
/// to what must be freed (a bounded heap), rather than by a catalog of every object in memory: memory stays
/// bounded by <see cref="MaxCandidates"/> whatever the size of the cache, and the order is exact least recently
/// used at the time of the scan. A pass costs one read of the index log (kept within about twice its live size by
/// compaction); it runs only when the cache is over budget, and frees down to nine tenths of it, so passes are rare.
/// </para>
/// Deleting a file a client is reading does not disturb that client (the open handle keeps the data); downloads
/// in progress are not in the index yet and are never candidates.
/// </summary>
internal sealed partial class EvictionService : BackgroundService
{
    /// <summary>Most victims one pass can choose (about 100 bytes each while it runs).</summary>
    internal const int MaxCandidates = 65_536;

    private const double Headroom = 0.1;

    private readonly MirrorCache _cache;
    private readonly CacheBudget _budget;
    private readonly IPinnedContent _pins;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly CacheOptions _options;
    private readonly ILogger<EvictionService> _logger;
    private readonly SemaphoreSlim _signal = new(0, 1);

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
        for (var pass = 0; pass < 8; pass++)
        {
            var toFree = _budget.BytesToFree(Headroom);
            if (toFree <= 0)
            {
                break;
            }

            var victims = await Task.Factory.StartNew(() => ChooseVictims(toFree), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
                .ConfigureAwait(false);
            var freedThisPass = 0L;
            foreach (var victim in victims)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var freed = await _cache.EvictAsync(victim.Digest, victim.Size, cancellationToken).ConfigureAwait(false);
                if (freed > 0)
                {
                    objects++;
                    bytes += freed;
                    freedThisPass += freed;
                    _metrics.Evicted(freed);
                }

                if (freedThisPass >= toFree)
                {
                    break;
                }
            }

            if (freedThisPass == 0)
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
    internal IReadOnlyList<(Digest Digest, long Size)> ChooseVictims(long bytesToFree)
    {
        var protectedSince = (_time.GetUtcNow() - _options.EvictionGracePeriod).ToUnixTimeMilliseconds();
        var candidates = new Candidates(bytesToFree, MaxCandidates, protectedSince, _pins);
        var visitor = new Visitor(candidates);
        _cache.Index.ScanContent(ref visitor);
        return candidates.OldestFirst();
    }

    private readonly struct Visitor(Candidates candidates) : IContentVisitor
    {
        public void Visit(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccessMilliseconds) =>
            candidates.Offer(key, deleted, size, lastAccessMilliseconds);
    }

    /// <summary>
    /// The oldest entries seen so far whose sizes reach the target: a max-heap on last access, trimmed from the top
    /// whenever the rest still reaches the target. A later version of a member (the log holds old versions until
    /// compaction) replaces it; a deletion removes it. Members are keyed by the first 16 bytes of their hash.
    /// </summary>
    private sealed class Candidates(long target, int maxCount, long protectedSince, IPinnedContent pins)
    {
        private readonly PriorityQueue<Member, long> _heap = new();
        private readonly Dictionary<UInt128, Member> _members = [];
        private long _bytes;

        private int _stale;

        private sealed class Member(UInt128 id, Digest digest, long size, long lastAccess)
        {
            public UInt128 Id { get; } = id;

            public Digest Digest { get; } = digest;

            public long Size { get; set; } = size;

            public long LastAccess { get; set; } = lastAccess;

            public bool Removed { get; set; }
        }

        public void Offer(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccess)
        {
            if (key.Length < 18)
            {
                return;
            }

            var id = BinaryPrimitives.ReadUInt128LittleEndian(key[2..18]);
            if (_members.TryGetValue(id, out var member))
            {
                // A newer version of a member: it was deleted, or its access moved on.
                Remove(id, member);
                if (deleted)
                {
                    return;
                }
            }
            else if (deleted)
            {
                return;
            }

            if (lastAccess > protectedSince || (_bytes >= target && TryPeek(out var newest) && lastAccess >= newest.LastAccess))
            {
                return;
            }

            if (!IndexRecords.TryReadContentKey(key, out var digest) || pins.IsPinned(digest.Value))
            {
                return;
            }

            var added = new Member(id, digest, size, lastAccess);
            _members[id] = added;
            _heap.Enqueue(added, -lastAccess);
            _bytes += size;
            Trim();
        }

        private void Remove(UInt128 id, Member member, bool stillInHeap = true)
        {
            _members.Remove(id);
            member.Removed = true;
            _bytes -= member.Size;
            if (stillInHeap && ++_stale > 2 * _members.Count + 1024)
            {
                // Removed members linger in the heap until they reach its top: rebuild it from the live ones.
                _heap.Clear();
                foreach (var live in _members.Values)
                {
                    _heap.Enqueue(live, -live.LastAccess);
                }

                _stale = 0;
            }
        }

        /// <summary>Drops the newest members while the others still reach the target (or there are too many).</summary>
        private void Trim()
        {
            while (TryPeek(out var newest) && (_bytes - newest.Size >= target || _members.Count > maxCount))
            {
                _heap.Dequeue();
                Remove(newest.Id, newest, stillInHeap: false);
            }
        }

        private bool TryPeek(out Member newest)
        {
            while (_heap.TryPeek(out newest!, out _))
            {
                if (!newest.Removed)
                {
                    return true;
                }

                _heap.Dequeue();
            }

            return false;
        }

        public IReadOnlyList<(Digest Digest, long Size)> OldestFirst() =>
            _members.Values.OrderBy(m => m.LastAccess).Select(m => (m.Digest, m.Size)).ToList();
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

        [LoggerMessage(2021, LogLevel.Warning, "Cache still over budget after evicting {Objects} objects ({Bytes} bytes): {Total} bytes cached and {InFlight} downloading are pinned or in use; {ElapsedMs:0} ms")]
        public static partial void BudgetNotMet(ILogger logger, int objects, long bytes, long total, long inFlight, double elapsedMs);
    }
}
