using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using MirrorProxy.Oci;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Cache;

/// <summary>
/// The content-addressed cache: files as the truth (<see cref="ContentStore"/>), FASTER as the index
/// (<see cref="CacheIndex"/>). Lookups go to the index first and fall back to the files, repairing the index,
/// so a lost or truncated index never hides content.
/// </summary>
internal sealed partial class MirrorCache : IDisposable
{
    private const byte RecordVersion = 1;

    /// <summary>Last-access times are kept to this precision, so a hot object costs one timestamp write a minute.</summary>
    private static readonly long TouchGranularityTicks = TimeSpan.FromMinutes(1).Ticks;

    private readonly CacheIndex _index;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, CatalogEntry> _catalog = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TagRecord> _tags = new(StringComparer.Ordinal);
    private long _bytes;
    private long _objects;

    private MirrorCache(ContentStore store, CacheIndex index, HotContentCache hot, TimeProvider time)
    {
        Store = store;
        _index = index;
        Hot = hot;
        _time = time;
    }

    /// <summary>Small hot content held in memory.</summary>
    public HotContentCache Hot { get; }

    /// <summary>Size and last access of one content object, for eviction.</summary>
    private sealed class CatalogEntry(long size, long lastAccessTicks)
    {
        public long Size { get; } = size;

        public long LastAccessTicks = lastAccessTicks;
    }

    public ContentStore Store { get; }

    /// <summary>Opens the cache at <paramref name="options"/>' path: cleans temporary files, recovers or rebuilds the index.</summary>
    public static MirrorCache Open(CacheOptions options, TimeProvider time, ILogger logger)
    {
        var store = new ContentStore(options.Path);
        var removed = store.Initialize();
        if (removed > 0)
        {
            Log.TempFilesRemoved(logger, removed);
        }

        var index = CacheIndex.Open(store.IndexDirectory, options, logger);
        var cache = new MirrorCache(store, index, new HotContentCache(options.MemorySize.Bytes, options.MemoryMaxObjectSize.Bytes), time);
        var started = time.GetTimestamp();
        var (content, tags) = cache.Scan(indexContent: !index.Recovered);
        if (!index.Recovered)
        {
            Log.IndexRebuilt(logger, content, tags, time.GetElapsedTime(started).TotalMilliseconds);
        }

        return cache;
    }

    /// <summary>Total bytes of content in the cache.</summary>
    public long TotalBytes => Interlocked.Read(ref _bytes);

    /// <summary>Number of content objects (blobs and manifests) in the cache.</summary>
    public long ObjectCount => Interlocked.Read(ref _objects);

    /// <summary>Fills the index from the files. Returns the number of content objects and tags indexed.</summary>
    public (int Content, int Tags) RebuildIndex() => Scan(indexContent: true);

    /// <summary>Counts the content on disk and indexes every tag; when asked, indexes the content too.</summary>
    private (int Content, int Tags) Scan(bool indexContent)
    {
        var content = 0;
        long bytes = 0;
        foreach (var (digest, size, mediaType, lastWrite) in Store.EnumerateContent())
        {
            if (indexContent)
            {
                IndexContent(digest, new ContentEntry(size, mediaType));
            }

            // A file's modification time records its last access (see Touch), so LRU order survives restarts.
            _catalog[digest.Value] = new CatalogEntry(size, lastWrite.Ticks);
            bytes += size;
            content++;
        }

        Interlocked.Exchange(ref _bytes, bytes);
        Interlocked.Exchange(ref _objects, content);

        // Tags are re-indexed even when the index was recovered: a checkpoint predates the last tag updates, and
        // the tag files (written before any answer used them) are the truth.
        var tags = 0;
        foreach (var (upstream, repository, tag, record) in Store.EnumerateTags())
        {
            IndexTag(upstream, repository, tag, record);
            tags++;
        }

        return (content, tags);
    }

    public async ValueTask<ContentEntry?> TryGetContentAsync(Digest digest)
    {
        if (Hot.TryGet(digest.Value, out var hot))
        {
            return new ContentEntry(hot.Content.Length, hot.MediaType);
        }

        var value = await _index.GetAsync(ContentKey(digest)).ConfigureAwait(false);
        if (value is not null && TryDecodeContent(value, out var entry))
        {
            return entry;
        }

        // Not in the index: the files decide, and the index learns.
        if (!Store.TryStat(digest, out var size))
        {
            return null;
        }

        entry = new ContentEntry(size, Store.ReadMediaType(digest));
        IndexContent(digest, entry);
        return entry;
    }

    /// <summary>Drops a content object the index knew but whose file is gone.</summary>
    public void Forget(Digest digest)
    {
        Hot.Remove(digest.Value);
        _index.Delete(ContentKey(digest).Span);
        if (!Store.TryStat(digest, out _) && _catalog.TryRemove(digest.Value, out var entry))
        {
            Interlocked.Add(ref _bytes, -entry.Size);
            Interlocked.Decrement(ref _objects);
        }
    }

    /// <summary>Raised after new content is published (for the size budget).</summary>
    public event Action? ContentAdded;

    public async Task PutManifestAsync(Digest digest, ReadOnlyMemory<byte> content, string mediaType, CancellationToken cancellationToken)
    {
        await Store.PutManifestAsync(digest, content, mediaType, cancellationToken).ConfigureAwait(false);
        IndexContent(digest, new ContentEntry(content.Length, mediaType));
        Hot.Add(digest.Value, content.ToArray(), mediaType);
        Counted(digest, content.Length);
    }

    /// <summary>Publishes a verified blob from <paramref name="tempPath"/>.</summary>
    public void PublishBlob(string tempPath, Digest digest, long size)
    {
        Store.Publish(tempPath, digest);
        IndexContent(digest, new ContentEntry(size, null));
        Counted(digest, size);
    }

    /// <summary>Adds an object to the catalog and the totals, once: the catalog decides what is new.</summary>
    private void Counted(Digest digest, long bytes)
    {
        if (_catalog.TryAdd(digest.Value, new CatalogEntry(bytes, _time.GetUtcNow().UtcTicks)))
        {
            Interlocked.Add(ref _bytes, bytes);
            Interlocked.Increment(ref _objects);
            ContentAdded?.Invoke();
        }
    }

    /// <summary>
    /// Records an access for least-recently-used eviction: in memory, and in the file's modification time so that
    /// the order survives a restart. At most once a minute per object.
    /// </summary>
    public void Touch(Digest digest)
    {
        if (!_catalog.TryGetValue(digest.Value, out var entry))
        {
            return;
        }

        var now = _time.GetUtcNow().UtcTicks;
        var last = Volatile.Read(ref entry.LastAccessTicks);
        if (now - last < TouchGranularityTicks || Interlocked.CompareExchange(ref entry.LastAccessTicks, now, last) != last)
        {
            return;
        }

        try
        {
            File.SetLastWriteTimeUtc(Store.BlobPath(digest), new DateTime(now, DateTimeKind.Utc));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Evicted meanwhile, or a read-only file system: the in-memory order still holds.
        }
    }

    /// <summary>Every content object with its size and last access, oldest access first.</summary>
    public IReadOnlyList<(string Digest, long Size, DateTimeOffset LastAccess)> LeastRecentlyUsed() =>
        _catalog.Select(p => (p.Key, p.Value.Size, new DateTimeOffset(Volatile.Read(ref p.Value.LastAccessTicks), TimeSpan.Zero)))
            .OrderBy(e => e.Item3).ToList();

    /// <summary>Removes a content object: its file first, then what describes it. Returns the bytes freed.</summary>
    public long Evict(Digest digest)
    {
        if (!_catalog.TryRemove(digest.Value, out var entry))
        {
            return 0;
        }

        Hot.Remove(digest.Value);
        Store.Delete(digest);
        _index.Delete(ContentKey(digest).Span);
        Interlocked.Add(ref _bytes, -entry.Size);
        Interlocked.Decrement(ref _objects);
        return entry.Size;
    }

    /// <summary>The bytes of a cached object (kept in memory when small), or null when its file is gone.</summary>
    public async ValueTask<byte[]?> ReadContentAsync(Digest digest, CancellationToken cancellationToken, string? mediaType = null)
    {
        if (Hot.TryGet(digest.Value, out var hot))
        {
            return hot.Content;
        }

        try
        {
            var content = await File.ReadAllBytesAsync(Store.BlobPath(digest), cancellationToken).ConfigureAwait(false);
            Hot.Add(digest.Value, content, mediaType);
            return content;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            Forget(digest);
            return null;
        }
    }

    public async ValueTask<TagRecord?> TryGetTagAsync(string upstream, string repository, string tag)
    {
        var memoKey = string.Concat(upstream, "\n", repository, ":", tag);
        if (_tags.TryGetValue(memoKey, out var record))
        {
            return record;
        }

        var value = await _index.GetAsync(TagKey(upstream, repository, tag)).ConfigureAwait(false);
        if (value is null || !TryDecodeTag(value, out record))
        {
            record = Store.ReadTag(upstream, repository, tag);
            if (record is not null)
            {
                IndexTag(upstream, repository, tag, record);
            }
        }

        if (record is not null)
        {
            _tags[memoKey] = record;
        }

        return record;
    }

    public async Task PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken)
    {
        await Store.PutTagAsync(upstream, repository, tag, record, cancellationToken).ConfigureAwait(false);
        IndexTag(upstream, repository, tag, record);
    }

    public void DeleteTag(string upstream, string repository, string tag)
    {
        _tags.TryRemove(string.Concat(upstream, "\n", repository, ":", tag), out _);
        Store.DeleteTag(upstream, repository, tag);
        _index.Delete(TagKey(upstream, repository, tag).Span);
    }

    public IEnumerable<string> ListTags(string upstream, string repository) => Store.ListTags(upstream, repository);

    /// <summary>Stores a listing answer (tags page, referrers index) for use while the upstream is unreachable.</summary>
    public Task PutListingAsync(string upstream, string repository, string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        Store.WriteAtomicallyAsync(Store.ListingPath(upstream, repository, key), content, cancellationToken);

    public async Task<byte[]?> TryReadListingAsync(string upstream, string repository, string key, CancellationToken cancellationToken)
    {
        try
        {
            return await File.ReadAllBytesAsync(Store.ListingPath(upstream, repository, key), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    public Task CheckpointAsync(CancellationToken cancellationToken) => _index.CheckpointAsync(cancellationToken);

    private void IndexContent(Digest digest, ContentEntry entry)
    {
        var mediaType = entry.MediaType is null ? [] : Encoding.UTF8.GetBytes(entry.MediaType);
        Span<byte> value = stackalloc byte[1 + 8 + 2 + mediaType.Length];
        value[0] = RecordVersion;
        BinaryPrimitives.WriteInt64LittleEndian(value[1..], entry.Size);
        BinaryPrimitives.WriteUInt16LittleEndian(value[9..], (ushort)mediaType.Length);
        mediaType.CopyTo(value[11..]);
        _index.Upsert(ContentKey(digest).Span, value);
    }

    private static bool TryDecodeContent(byte[] value, out ContentEntry entry)
    {
        entry = default;
        if (value.Length < 11 || value[0] != RecordVersion)
        {
            return false;
        }

        var size = BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(1));
        var typeLength = BinaryPrimitives.ReadUInt16LittleEndian(value.AsSpan(9));
        if (value.Length < 11 + typeLength)
        {
            return false;
        }

        entry = new ContentEntry(size, typeLength == 0 ? null : Encoding.UTF8.GetString(value, 11, typeLength));
        return true;
    }

    private void IndexTag(string upstream, string repository, string tag, TagRecord record)
    {
        _tags[string.Concat(upstream, "\n", repository, ":", tag)] = record;
        var digest = Encoding.ASCII.GetBytes(record.Digest.Value);
        var mediaType = Encoding.UTF8.GetBytes(record.MediaType);
        var value = new byte[1 + 8 + 8 + 1 + digest.Length + 2 + mediaType.Length];
        value[0] = RecordVersion;
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(1), record.FetchedAt.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(9), record.Size);
        value[17] = (byte)digest.Length;
        digest.CopyTo(value, 18);
        BinaryPrimitives.WriteUInt16LittleEndian(value.AsSpan(18 + digest.Length), (ushort)mediaType.Length);
        mediaType.CopyTo(value, 20 + digest.Length);
        _index.Upsert(TagKey(upstream, repository, tag).Span, value);
    }

    private static bool TryDecodeTag(byte[] value, out TagRecord? record)
    {
        record = null;
        if (value.Length < 20 || value[0] != RecordVersion)
        {
            return false;
        }

        var digestLength = value[17];
        if (value.Length < 20 + digestLength || !Digest.TryParse(Encoding.ASCII.GetString(value, 18, digestLength), out var digest))
        {
            return false;
        }

        var typeLength = BinaryPrimitives.ReadUInt16LittleEndian(value.AsSpan(18 + digestLength));
        if (value.Length < 20 + digestLength + typeLength)
        {
            return false;
        }

        record = new TagRecord(
            digest,
            Encoding.UTF8.GetString(value, 20 + digestLength, typeLength),
            BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(9)),
            DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(1))));
        return true;
    }

    private static ReadOnlyMemory<byte> ContentKey(Digest digest) => Encoding.ASCII.GetBytes("c:" + digest.Value);

    private static ReadOnlyMemory<byte> TagKey(string upstream, string repository, string tag) =>
        Encoding.UTF8.GetBytes(string.Concat("t:", upstream, "\n", repository, ":", tag));

    public void Dispose() => _index.Dispose();

    private static partial class Log
    {
        [LoggerMessage(2002, LogLevel.Information, "Removed {Count} temporary files left by an interrupted run")]
        public static partial void TempFilesRemoved(ILogger logger, int count);

        [LoggerMessage(2003, LogLevel.Information, "Rebuilt the cache index from the files: {Content} objects, {Tags} tags in {ElapsedMs:0} ms")]
        public static partial void IndexRebuilt(ILogger logger, int content, int tags, double elapsedMs);
    }
}
