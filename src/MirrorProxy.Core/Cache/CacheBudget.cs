using Microsoft.Extensions.Options;

namespace MirrorProxy.Cache;

/// <summary>
/// The cache's size budget: the content it holds plus the downloads in progress (which will be content soon, and
/// occupy the disk already) must stay within <c>Cache:MaxSize</c>, and the disk must keep <c>Cache:FreeDiskWatermark</c>
/// free. Eviction frees down to nine tenths of the budget, so that one pass makes room for many new objects.
/// </summary>
internal sealed class CacheBudget
{
    private readonly MirrorCache _cache;
    private readonly CacheOptions _options;
    private long _inFlight;

    public CacheBudget(MirrorCache cache, IOptions<CacheOptions> options)
    {
        _cache = cache;
        _options = options.Value;
    }

    public bool IsBounded => _options.MaxSize is not null || _options.FreeDiskWatermark is not null;

    /// <summary>Bytes announced by downloads in progress.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Largest blob kept: the configured cap, and never more than the whole size budget.</summary>
    public long MaxBlobSize => Math.Min(_options.MaxBlobSize.Bytes, _options.MaxSize?.Bytes ?? long.MaxValue);

    public void DownloadStarted(long bytes) => Interlocked.Add(ref _inFlight, bytes);

    public void DownloadEnded(long bytes) => Interlocked.Add(ref _inFlight, -bytes);

    public bool IsOverBudget() => BytesToFree(0) > 0;

    /// <summary>Bytes to evict now: to get back within the budget less <paramref name="headroom"/> of it, or to the free-disk watermark.</summary>
    public long BytesToFree(double headroom)
    {
        var needed = 0L;
        if (_options.MaxSize is { } max)
        {
            var target = (long)(max.Bytes * (1 - headroom));
            var used = _cache.TotalBytes + InFlight;
            if (used > max.Bytes)
            {
                needed = used - target;
            }
        }

        if (_options.FreeDiskWatermark is { } watermark && _cache.Store.FreeSpace() is { } free && free < watermark.Bytes)
        {
            needed = Math.Max(needed, (long)(watermark.Bytes * (1 + headroom)) - free);
        }

        return needed;
    }
}
