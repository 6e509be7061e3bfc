using Microsoft.Extensions.Logging;
using MirrorProxy.Metrics;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>Opens the cache kept in files under <c>Cache:Path</c>: the content store, its documents, and the FASTER index over them.</summary>
internal static partial class FileCache
{
    public static MirrorCache Open(CacheOptions options, MirrorMetrics metrics, TimeProvider time, ILoggerFactory loggers)
    {
        var layout = new CacheLayout(options.Path);
        var removed = layout.Initialize();
        if (removed > 0)
        {
            Log.TempFilesRemoved(loggers.CreateLogger<MirrorCache>(), removed);
        }

        var store = new FileContentStore(layout, time, loggers.CreateLogger<FileContentStore>());
        var index = CacheIndex.Open(layout.IndexDirectory, new IndexSettings(options.IndexSizeBytes, options.LogMemoryBytes), loggers.CreateLogger<CacheIndex>());
        var hot = new HotContentCache(options.MemorySize.Bytes, options.MemoryMaxObjectSize.Bytes);
        var health = new CacheHealth(metrics, time, loggers.CreateLogger<CacheHealth>());
        return new MirrorCache(store, new FileMetadataStore(store), index, hot, health, metrics, time, loggers.CreateLogger<MirrorCache>());
    }

    private static partial class Log
    {
        [LoggerMessage(2002, LogLevel.Information, "Removed {Count} temporary files left by an interrupted run")]
        public static partial void TempFilesRemoved(ILogger logger, int count);
    }
}
