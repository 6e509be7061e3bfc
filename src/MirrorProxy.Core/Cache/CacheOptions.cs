namespace MirrorProxy.Cache;

public sealed class CacheOptions
{
    /// <summary>Directory that holds blobs, manifests, tags and the index.</summary>
    public string Path { get; set; } = "mirrorproxy-cache";

    /// <summary>Hash index size of the FASTER store in bytes (a power of two, at least 64 KiB).</summary>
    public long IndexSizeBytes { get; set; } = 1L << 20;

    /// <summary>In-memory part of the FASTER log in bytes (a power of two, at least 256 KiB).</summary>
    public long LogMemoryBytes { get; set; } = 1L << 23;

    /// <summary>Below this much free space on the cache's file system the mirror reports not ready.</summary>
    public Hosting.ByteSize MinFreeDisk { get; set; } = new(256L << 20);

    /// <summary>How often index changes are checkpointed to disk.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromSeconds(30);
}
