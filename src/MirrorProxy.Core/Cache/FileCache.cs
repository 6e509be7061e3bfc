using Microsoft.Extensions.Logging;
using MirrorProxy.Metrics;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// Opens the cache kept in files under <c>Cache:Path</c>: the content store, its documents, and the FASTER index
/// over them; with a <paramref name="shared"/> store, the files are this node's read cache of it, and documents are
/// kept in both.
/// </summary>
internal static partial class FileCache
{
    public static MirrorCache Open(CacheOptions options, MirrorMetrics metrics, TimeProvider time, ILoggerFactory loggers, SharedTier? shared = null)
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
        IMetadataStore metadata = new FileMetadataStore(store);
        if (shared is not null)
        {
            metadata = new SharedMetadataStore(metadata, shared.Metadata, () => shared.IsReachable, loggers.CreateLogger<SharedMetadataStore>());
        }

        return new MirrorCache(store, metadata, index, hot, health, metrics, time, loggers.CreateLogger<MirrorCache>(), shared);
    }

    private static partial class Log
    {
        [LoggerMessage(2002, LogLevel.Information, "Removed {Count} temporary files left by an interrupted run")]
        public static partial void TempFilesRemoved(ILogger logger, int count);
    }
}
