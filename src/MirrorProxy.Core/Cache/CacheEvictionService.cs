using MirrorProxy.Hosting;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Cache;

/// <summary>
/// Keeps the cache within <c>Cache:MaxSize</c> and above <c>Cache:FreeDiskWatermark</c> by deleting unpinned
/// content, least recently used first, in the background. A pass runs when new content pushes the cache over
/// budget and on a timer. Deleting a file a client is reading does not disturb that client (the open handle
/// keeps the data); downloads in progress are not in the catalog yet and are never candidates.
/// </summary>
internal sealed partial class CacheEvictionService : BackgroundService
{
    private readonly MirrorCache _cache;
    private readonly IPinnedContent _pins;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly CacheOptions _options;
    private readonly ILogger<CacheEvictionService> _logger;
    private readonly SemaphoreSlim _signal = new(0, 1);

    public CacheEvictionService(MirrorCache cache, IPinnedContent pins, MirrorMetrics metrics, TimeProvider time, IOptions<MirrorProxyOptions> options, ILogger<CacheEvictionService> logger)
    {
        _cache = cache;
        _pins = pins;
        _metrics = metrics;
        _time = time;
        _options = options.Value.Cache;
        _logger = logger;
        _cache.ContentAdded += OnContentAdded;
    }

    public bool IsEnabled => _options.MaxSize is not null || _options.FreeDiskWatermark is not null;

    private void OnContentAdded()
    {
        if (IsOverBudget() && _signal.CurrentCount == 0)
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
        if (!IsEnabled)
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

    /// <summary>One pass: evicts until within budget or out of candidates. Returns the objects and bytes evicted.</summary>
    public async Task<(int Objects, long Bytes)> EvictAsync(CancellationToken cancellationToken)
    {
        if (!IsOverBudget())
        {
            return (0, 0);
        }

        var started = _time.GetTimestamp();
        var protectedSince = _time.GetUtcNow() - _options.EvictionGracePeriod;
        var objects = 0;
        var bytes = 0L;
        foreach (var (digest, _, lastAccess) in _cache.LeastRecentlyUsed())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!IsOverBudget())
            {
                break;
            }

            if (_pins.IsPinned(digest) || lastAccess > protectedSince || !Digest.TryParse(digest, out var parsed))
            {
                continue;
            }

            var freed = _cache.Evict(parsed);
            if (freed > 0 || !_cache.Store.TryStat(parsed, out _))
            {
                objects++;
                bytes += freed;
                _metrics.Evicted(freed);
            }

            if (objects % 64 == 0)
            {
                await Task.Yield();
            }
        }

        var elapsed = _time.GetElapsedTime(started).TotalMilliseconds;
        if (IsOverBudget())
        {
            Log.BudgetNotMet(_logger, objects, bytes, _cache.TotalBytes, elapsed);
        }
        else if (objects > 0)
        {
            Log.Evicted(_logger, objects, bytes, _cache.TotalBytes, elapsed);
        }

        return (objects, bytes);
    }

    private bool IsOverBudget()
    {
        if (_options.MaxSize is { } max && _cache.TotalBytes > max.Bytes)
        {
            return true;
        }

        return _options.FreeDiskWatermark is { } watermark && _cache.Store.FreeSpace() is { } free && free < watermark.Bytes;
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

        [LoggerMessage(2021, LogLevel.Warning, "Cache still over budget after evicting {Objects} objects ({Bytes} bytes): {Total} bytes are pinned or in use; {ElapsedMs:0} ms")]
        public static partial void BudgetNotMet(ILogger logger, int objects, long bytes, long total, double elapsedMs);
    }
}
