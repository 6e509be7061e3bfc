using Microsoft.Extensions.Logging;
using MirrorProxy.Metrics;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// Whether the cache can take new content. A write that fails with a full, read-only or failing disk marks the
/// cache degraded (the mirror goes on serving what it has, and what upstreams send, without keeping it); the next
/// write that succeeds clears the mark. Readiness and the metrics report it.
/// </summary>
internal sealed partial class CacheHealth
{
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<CacheHealth> _logger;
    private Fault? _fault;

    public CacheHealth(MirrorMetrics metrics, TimeProvider time, ILogger<CacheHealth> logger)
    {
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    private sealed record Fault(StorageStatus Status, string What, DateTimeOffset Since, DateTimeOffset Last);

    public bool IsDegraded => Volatile.Read(ref _fault) is not null;

    /// <summary>
    /// Whether a write failed within <paramref name="window"/>: new downloads then relay instead of writing, and
    /// try writing again once the window has passed (eviction may have made room, a remount may have happened).
    /// </summary>
    public bool FailedWithin(TimeSpan window) => Volatile.Read(ref _fault) is { } fault && _time.GetUtcNow() - fault.Last < window;

    /// <summary>What failed last and since when, for readiness; null when healthy.</summary>
    public string? Describe() => Volatile.Read(ref _fault) is { } fault
        ? $"cache writes fail ({StorageErrors.Label(fault.Status)}) since {fault.Since:u}: last {fault.What}; serving what is cached without keeping new content"
        : null;

    public void WriteFailed(StorageStatus status, string what)
    {
        _metrics.CacheWriteFailed(StorageErrors.Label(status));
        var now = _time.GetUtcNow();
        var previous = Interlocked.Exchange(ref _fault, new Fault(status, what, Volatile.Read(ref _fault)?.Since ?? now, now));
        if (previous is null)
        {
            Log.Degraded(_logger, status, what);
        }
    }

    public void WriteSucceeded()
    {
        if (Volatile.Read(ref _fault) is not null && Interlocked.Exchange(ref _fault, null) is not null)
        {
            Log.Recovered(_logger);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2030, LogLevel.Error, "Cache degraded: writing {What} failed ({Status}); cached content is still served, new content is passed through without being kept")]
        public static partial void Degraded(ILogger logger, StorageStatus status, string what);

        [LoggerMessage(2031, LogLevel.Information, "Cache writes succeed again")]
        public static partial void Recovered(ILogger logger);
    }
}
