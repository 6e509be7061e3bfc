namespace MirrorProxy.Cache;

public sealed class CacheOptions
{
    /// <summary>Directory that holds blobs, manifests, tags and the index.</summary>
    public string Path { get; set; } = "mirrorproxy-cache";

    /// <summary>Hash index size of the FASTER store in bytes (a power of two, at least 64 KiB).</summary>
    public long IndexSizeBytes { get; set; } = 1L << 20;

    /// <summary>In-memory part of the FASTER log in bytes (a power of two, at least 256 KiB).</summary>
    public long LogMemoryBytes { get; set; } = 1L << 23;

    /// <summary>Memory for small hot content (manifests, configs, small layers) served without reading files; 0 turns it off.</summary>
    public Hosting.ByteSize MemorySize { get; set; } = new(16L << 20);

    /// <summary>Largest object held in memory.</summary>
    public Hosting.ByteSize MemoryMaxObjectSize { get; set; } = new(256L << 10);

    /// <summary>Size budget for cached content; unpinned content is evicted, least recently used first, to stay within it.</summary>
    public Hosting.ByteSize? MaxSize { get; set; }

    /// <summary>Evict unpinned content while the cache's file system has less free space than this.</summary>
    public Hosting.ByteSize? FreeDiskWatermark { get; set; }

    /// <summary>Content used within this window is not evicted (0 by default: strict least-recently-used order).</summary>
    public TimeSpan EvictionGracePeriod { get; set; } = TimeSpan.Zero;

    /// <summary>How often the budget is checked even when nothing new arrived.</summary>
    public TimeSpan EvictionInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Below this much free space on the cache's file system the mirror reports not ready.</summary>
    public Hosting.ByteSize MinFreeDisk { get; set; } = new(256L << 20);

    /// <summary>How often index changes are checkpointed to disk.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromSeconds(30);
}
