using System.Numerics;
using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;

namespace MirrorProxy.Cache;

/// <summary>The cache: where it lives, its budgets, and the index's fixed memory. Section <c>MirrorProxy:Cache</c>.</summary>
public sealed class CacheOptions
{
    public const string SectionName = "MirrorProxy:Cache";

    /// <summary>Directory that holds blobs, manifests, tags and the index.</summary>
    public string Path { get; set; } = "mirrorproxy-cache";

    /// <summary>
    /// Hash index size of the FASTER store in bytes (a power of two, at least 64 KiB). Each 64-byte bucket holds 7
    /// entries: size it at about 10 bytes per cached object and tag (1 MiB suits ~100,000); a smaller one still works,
    /// with overflow buckets that cost memory as the cache grows.
    /// </summary>
    public long IndexSizeBytes { get; set; } = 1L << 20;

    /// <summary>
    /// In-memory part of the FASTER log in bytes (a power of two, at least 256 KiB); older records are read from disk.
    /// A start reads back only the newest 1 MiB of it; the rest fills as the mirror stores and serves.
    /// </summary>
    public long LogMemoryBytes { get; set; } = 1L << 23;

    /// <summary>Memory for small hot content (manifests, configs, small layers) served without reading files; 0 turns it off.</summary>
    public ByteSize MemorySize { get; set; } = new(16L << 20);

    /// <summary>Largest object held in memory.</summary>
    public ByteSize MemoryMaxObjectSize { get; set; } = new(256L << 10);

    /// <summary>Size budget for cached content (downloads in progress included); unpinned content is evicted, least recently used first, to stay within it.</summary>
    public ByteSize? MaxSize { get; set; }

    /// <summary>
    /// Largest blob the mirror keeps. A larger one (by its announced length) is passed through to the client without
    /// being kept; a download without a length that grows past it is abandoned.
    /// </summary>
    public ByteSize MaxBlobSize { get; set; } = new(16L << 30);

    /// <summary>Evict unpinned content while the cache's file system has less free space than this.</summary>
    public ByteSize? FreeDiskWatermark { get; set; }

    /// <summary>Content used within this window is not evicted (0 by default: strict least-recently-used order).</summary>
    public TimeSpan EvictionGracePeriod { get; set; } = TimeSpan.Zero;

    /// <summary>How often the budget is checked even when nothing new arrived.</summary>
    public TimeSpan EvictionInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Below this much free space on the cache's file system, readiness reports the cache degraded.</summary>
    public ByteSize MinFreeDisk { get; set; } = new(256L << 20);

    /// <summary>How often index changes are checkpointed to disk (the log only; cheap).</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the whole hash index is checkpointed too, when it changed (it is IndexSizeBytes on disk each time).</summary>
    public TimeSpan IndexCheckpointInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The index log is compacted when it has doubled since the last compaction and is larger than this.</summary>
    public ByteSize IndexCompactionMinimum { get; set; } = new(16L << 20);

    /// <summary>Objects per second the index is rebuilt from the files at after a crash (the mirror serves meanwhile).</summary>
    public int RebuildRate { get; set; } = 20_000;

    /// <summary>Bytes per second the background scrub re-hashes cached content at, each object counted in whole 4 KiB blocks; 0 turns it off.</summary>
    public ByteSize ScrubRate { get; set; } = new(20L << 20);

    /// <summary>Time between the starts of two scrub rounds over the whole cache.</summary>
    public TimeSpan ScrubInterval { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How long after a start (and after the index is trusted) a due scrub round waits: the first minutes after a
    /// restart belong to the nodes that pull again, not to a walk over every file.
    /// </summary>
    public TimeSpan ScrubStartDelay { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>Checks <see cref="CacheOptions"/> at start; every failure names its key.</summary>
internal sealed class CacheOptionsValidator : IValidateOptions<CacheOptions>
{
    private const string Key = CacheOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, CacheOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Path))
        {
            failures.Add($"{Key}:Path: a directory is required");
        }

        if (options.IndexSizeBytes < 1 << 16 || !BitOperations.IsPow2(options.IndexSizeBytes))
        {
            failures.Add($"{Key}:IndexSizeBytes: must be a power of two of at least 65536, got {options.IndexSizeBytes}");
        }

        if (options.LogMemoryBytes < 1 << 18 || !BitOperations.IsPow2(options.LogMemoryBytes))
        {
            failures.Add($"{Key}:LogMemoryBytes: must be a power of two of at least 262144, got {options.LogMemoryBytes}");
        }

        if (options.MaxSize is { Bytes: <= 0 })
        {
            failures.Add($"{Key}:MaxSize: must be positive, got {options.MaxSize}");
        }

        if (options.MaxBlobSize.Bytes <= 0)
        {
            failures.Add($"{Key}:MaxBlobSize: must be positive, got {options.MaxBlobSize}");
        }

        if (options.ScrubRate.Bytes < 0)
        {
            failures.Add($"{Key}:ScrubRate: must not be negative, got {options.ScrubRate}");
        }

        if (options.RebuildRate <= 0)
        {
            failures.Add($"{Key}:RebuildRate: must be positive, got {options.RebuildRate}");
        }

        if (options.EvictionGracePeriod < TimeSpan.Zero)
        {
            failures.Add($"{Key}:EvictionGracePeriod: must not be negative");
        }

        if (options.ScrubStartDelay < TimeSpan.Zero)
        {
            failures.Add($"{Key}:ScrubStartDelay: must not be negative, got {options.ScrubStartDelay}");
        }

        foreach (var (value, key) in new[]
                 {
                     (options.EvictionInterval, "EvictionInterval"), (options.CheckpointInterval, "CheckpointInterval"),
                     (options.IndexCheckpointInterval, "IndexCheckpointInterval"), (options.ScrubInterval, "ScrubInterval"),
                 })
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"{Key}:{key}: must be positive, got {value}");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
