using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Coordination;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Storage.S3;

namespace MirrorProxy.Cache;

/// <summary>
/// Keeps the store replicas share within <c>Storage:S3:MaxSize</c>. One replica at a time does it: the holder of
/// the leader lease, which it takes for each pass. A pass lists the bucket once to add up its size and, when it is
/// over budget, once more to choose victims: the least recently used unpinned objects (use as the replicas record
/// it in the coordination store, else the object's write time), kept in a heap bounded in memory like local
/// eviction's candidates (<see cref="MaxVictims"/>), so memory does not grow with the bucket. Each node's local
/// copies are left alone: they are its own cache, and still whole.
/// </summary>
internal sealed partial class SharedEvictionService : BackgroundService
{
    private const string LeaderLease = "leader:shared-eviction";
    private const double Headroom = 0.1;
    private const int Batch = 500;

    /// <summary>What one victim costs while a pass chooses: its digest string (about 190 bytes for sha256) and its heap entry.</summary>
    private const int BytesPerVictim = 256;

    /// <summary>
    /// Most victims one pass holds: the memory local eviction allows its candidates (<see cref="EvictionCandidates.MemoryBudget"/>),
    /// 65,536 here. A pass that needs more frees the oldest that fit; the next pass goes on.
    /// </summary>
    internal const int MaxVictims = (int)(EvictionCandidates.MemoryBudget / BytesPerVictim);

    private readonly SharedTier? _shared;
    private readonly ICoordination _coordination;
    private readonly IPinnedContent _pins;
    private readonly S3Options _options;
    private readonly CacheOptions _cacheOptions;
    private readonly TimeProvider _time;
    private readonly ILogger<SharedEvictionService> _logger;

    public SharedEvictionService(
        MirrorCache cache, ICoordination coordination, IPinnedContent pins, IOptions<S3Options> options, IOptions<CacheOptions> cacheOptions, TimeProvider time,
        ILogger<SharedEvictionService> logger)
    {
        _shared = cache.Shared;
        _coordination = coordination;
        _pins = pins;
        _options = options.Value;
        _cacheOptions = cacheOptions.Value;
        _time = time;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_shared is null || _options.MaxSize is null)
        {
            return;
        }

        try
        {
            while (true)
            {
                await Task.Delay(_options.EvictionInterval, _time, stoppingToken).ConfigureAwait(false);
                await RunAsLeaderAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass when this replica can take the leader lease; (0, 0) when another replica holds it.</summary>
    public async Task<(int Objects, long Bytes)> RunAsLeaderAsync(CancellationToken cancellationToken)
    {
        var (status, lease) = await _coordination.TryAcquireAsync(LeaderLease, cancellationToken).ConfigureAwait(false);
        if (status != LeaseStatus.Acquired)
        {
            // Another replica leads, or replicas cannot agree now: then nobody evicts (the bucket grows for a while).
            Log.NotLeader(_logger, status);
            return (0, 0);
        }

        await using (lease!.ConfigureAwait(false))
        {
            return await EvictAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(int Objects, long Bytes)> EvictAsync(CancellationToken cancellationToken)
    {
        var shared = _shared!;
        if (!shared.IsReachable)
        {
            return (0, 0);
        }

        var started = _time.GetTimestamp();
        long total = 0, count = 0;
        await foreach (var stored in shared.Store.EnumerateAsync(namedSince: DateTimeOffset.MinValue, fromShard: null, cancellationToken).ConfigureAwait(false))
        {
            total += stored.Size;
            count++;
        }

        var budget = _options.MaxSize!.Value.Bytes;
        Log.Measured(_logger, total, count, budget);
        if (total <= budget)
        {
            return (0, 0);
        }

        // Pin sets another replica changed since this one last read them count too.
        await _pins.ReloadAsync(cancellationToken).ConfigureAwait(false);
        var toFree = total - (long)(budget * (1 - Headroom));
        var protectedSince = _time.GetUtcNow() - _cacheOptions.EvictionGracePeriod;
        var victims = new Victims(toFree, MaxVictims);
        var page = new List<StoredObject>(Batch);
        await foreach (var stored in shared.Store.EnumerateAsync(namedSince: DateTimeOffset.MinValue, fromShard: null, cancellationToken).ConfigureAwait(false))
        {
            if (!_pins.IsPinned(stored.Digest.Value))
            {
                page.Add(stored);
            }

            if (page.Count == Batch)
            {
                await OfferAsync(page, victims, protectedSince, cancellationToken).ConfigureAwait(false);
            }
        }

        await OfferAsync(page, victims, protectedSince, cancellationToken).ConfigureAwait(false);

        int objects = 0;
        long bytes = 0;
        foreach (var (digest, size) in victims.OldestFirst())
        {
            if (await shared.Store.DeleteAsync(digest, cancellationToken).ConfigureAwait(false) is StorageStatus.Ok or StorageStatus.NotFound)
            {
                _coordination.ForgetAccess(digest);
                objects++;
                bytes += size;
            }
        }

        Log.Evicted(_logger, objects, bytes, total, count, budget, _time.GetElapsedTime(started).TotalMilliseconds);
        return (objects, bytes);
    }

    private async Task OfferAsync(List<StoredObject> page, Victims victims, DateTimeOffset protectedSince, CancellationToken cancellationToken)
    {
        if (page.Count == 0)
        {
            return;
        }

        var used = await _coordination.GetAccessAsync(page.Select(p => p.Digest).ToList(), cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < page.Count; i++)
        {
            var lastUse = used[i] is { } recorded && recorded > page[i].LastWrite ? recorded : page[i].LastWrite;
            if (lastUse < protectedSince)
            {
                victims.Offer(page[i].Digest, page[i].Size, lastUse.ToUnixTimeMilliseconds());
            }
        }

        page.Clear();
    }

    /// <summary>The oldest objects offered whose sizes reach the target: a max-heap on last use, trimmed from the newest.</summary>
    private sealed class Victims(long target, int maxCount)
    {
        private readonly PriorityQueue<(Digest Digest, long Size), long> _heap = new();
        private long _bytes;

        public void Offer(Digest digest, long size, long lastUse)
        {
            if (_bytes >= target && _heap.TryPeek(out _, out var newest) && -newest <= lastUse)
            {
                return;
            }

            _heap.Enqueue((digest, size), -lastUse);
            _bytes += size;
            while (_heap.TryPeek(out var top, out _) && (_bytes - top.Size >= target || _heap.Count > maxCount))
            {
                _heap.Dequeue();
                _bytes -= top.Size;
            }
        }

        public IEnumerable<(Digest Digest, long Size)> OldestFirst()
        {
            var all = new List<((Digest, long) Item, long Priority)>(_heap.Count);
            while (_heap.TryDequeue(out var item, out var priority))
            {
                all.Add((item, priority));
            }

            // Dequeued newest first (the largest last use); the oldest go first.
            for (var i = all.Count - 1; i >= 0; i--)
            {
                yield return all[i].Item;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2502, LogLevel.Debug, "Shared eviction skipped: the leader lease is {Status}")]
        public static partial void NotLeader(ILogger logger, LeaseStatus status);

        [LoggerMessage(2503, LogLevel.Debug, "Shared store holds {Total} bytes in {Count} objects (budget {Budget})")]
        public static partial void Measured(ILogger logger, long total, long count, long budget);

        [LoggerMessage(2501, LogLevel.Information, "Shared store over budget: evicted {Objects} objects ({Bytes} bytes) of {Total} bytes in {Count} objects (budget {Budget}) in {ElapsedMs:0} ms")]
        public static partial void Evicted(ILogger logger, int objects, long bytes, long total, long count, long budget, double elapsedMs);
    }
}
