using Microsoft.Extensions.Logging;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>What opening a cached object for serving gave.</summary>
internal enum CachedContentStatus
{
    Ok,
    /// <summary>Not in the cache (or gone since the index last saw it).</summary>
    Missing,
    /// <summary>It was there but damaged (wrong size, or bytes that do not hash to the digest): it is quarantined now.</summary>
    Damaged,
    /// <summary>The storage failed to read it (EIO, say).</summary>
    Unreadable,
}

/// <summary>
/// The content-addressed cache as the rest of the mirror sees it: lookups go to the hot memory cache, then the
/// index, then the store (which is the truth, and repairs the index); objects are checked against the index when
/// opened and hashed when loaded into memory, and a damaged one is quarantined rather than served. Totals are
/// counters kept in the index across clean restarts; nothing here holds a list of what the cache contains.
/// </summary>
internal sealed partial class MirrorCache : IDisposable
{
    /// <summary>Last-access times are kept to this precision, so a hot object costs one index write a minute.</summary>
    private static readonly TimeSpan TouchGranularity = TimeSpan.FromMinutes(1);

    private const string TotalsState = "totals";

    /// <summary>When a checkpoint last found the index agreeing with the files (ticks, UTC).</summary>
    private const string AgreedState = "agreed";

    /// <summary>At most this many damaged objects are remembered as <see cref="_leftInPlace"/>; beyond it they are hashed again when found.</summary>
    private const int MaxLeftInPlace = 1024;

    private readonly IContentStore _store;
    private readonly IMetadataStore _metadata;
    private readonly CacheIndex _index;
    private readonly CacheHealth _health;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SharedTier? _shared;
    // Objects found damaged whose files the disk refused to move aside (it went read-only): not learned from the
    // files again, which would hash each one at every request and find the same damage, but moved aside once the
    // disk lets them go. Bounded; empty while the disk behaves.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, QuarantineReason> _leftInPlace = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _whenIndexTrusted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _bytes;
    private long _objects;
    private volatile bool _indexTrusted;

    public MirrorCache(
        IContentStore store, IMetadataStore metadata, CacheIndex index, HotContentCache hot, CacheHealth health, MirrorMetrics metrics, TimeProvider time,
        ILogger<MirrorCache> logger, SharedTier? shared = null)
    {
        _store = store;
        _shared = shared;
        _metadata = metadata;
        _index = index;
        Hot = hot;
        _health = health;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _indexTrusted = index.Recovery == IndexRecovery.Clean;
        if (_indexTrusted)
        {
            _whenIndexTrusted.TrySetResult();
        }
    }

    /// <summary>Small hot content held in memory.</summary>
    public HotContentCache Hot { get; }

    public CacheIndex Index => _index;

    /// <summary>This node's store: the cache itself, or the local read cache of a shared store.</summary>
    public IContentStore Store => _store;

    /// <summary>The store replicas share, when there is one.</summary>
    public SharedTier? Shared => _shared;

    public IMetadataStore Metadata => _metadata;

    public CacheHealth Health => _health;

    /// <summary>Total bytes of content in the cache.</summary>
    public long TotalBytes => Interlocked.Read(ref _bytes);

    /// <summary>Number of content objects (blobs and manifests) in the cache.</summary>
    public long ObjectCount => Interlocked.Read(ref _objects);

    /// <summary>
    /// False after a crash or a lost index until the background rebuild has walked the files: meanwhile tags are
    /// read from their files first, and totals are estimates.
    /// </summary>
    public bool IndexTrusted => _indexTrusted;

    /// <summary>Whether the cache cannot keep what it is given: a write failed (<see cref="CacheHealth"/>), or its index takes no writes.</summary>
    public bool IsDegraded => Health.IsDegraded || !_index.AcceptsWrites;

    /// <summary>Why the index takes no writes, for readiness; null while it does.</summary>
    public string? DescribeIndexNotWritable() => _index.AcceptsWrites
        ? null
        : $"the cache index failed a write to its disk and takes no writes until the next start ({_index.WritesDropped} dropped); content is served and looked up in the files";

    /// <summary>Completes once <see cref="IndexTrusted"/> is true: at once after a clean stop, else when the rebuild is done.</summary>
    public Task WhenIndexTrusted => _whenIndexTrusted.Task;

    /// <summary>Raised after new content is published (for the size budget).</summary>
    public event Action? ContentAdded;

    /// <summary>Raised when content is stored or its use is recorded (at most once a minute per object), for replicas' shared eviction.</summary>
    public event Action<Digest, DateTimeOffset>? Used;

    /// <summary>Reads the totals a clean stop left in the index.</summary>
    public async Task LoadTotalsAsync()
    {
        if (await _index.GetStateAsync(TotalsState).ConfigureAwait(false) is var (bytes, objects))
        {
            Interlocked.Exchange(ref _bytes, bytes);
            Interlocked.Exchange(ref _objects, objects);
        }
    }

    /// <summary>
    /// Writes the totals into the index before a checkpoint and, while the index agrees with the files, the time:
    /// every object committed before it is in the checkpoint, which lets a rebuild after a crash skip looking up
    /// the files older than that (<see cref="LoadAgreedAtAsync"/>). A checkpoint taken mid-rebuild keeps the older time.
    /// </summary>
    public void SaveTotals()
    {
        _index.PutState(TotalsState, TotalBytes, ObjectCount);
        if (_indexTrusted)
        {
            _index.PutState(AgreedState, _time.GetUtcNow().UtcTicks, 0);
        }
    }

    /// <summary>The time the recovered checkpoint last saw the index agree with the files; null when it never did.</summary>
    public async Task<DateTimeOffset?> LoadAgreedAtAsync() =>
        await _index.GetStateAsync(AgreedState).ConfigureAwait(false) is var (ticks, _) && ticks > 0 && ticks <= DateTimeOffset.MaxValue.UtcTicks
            ? new DateTimeOffset(ticks, TimeSpan.Zero)
            : null;

    /// <summary>The rebuild has walked every file: the index agrees with them, and these are the totals.</summary>
    internal void RebuildCompleted(long bytes, long objects)
    {
        Interlocked.Exchange(ref _bytes, bytes);
        Interlocked.Exchange(ref _objects, objects);
        _indexTrusted = true;
        _whenIndexTrusted.TrySetResult();
    }

    /// <summary>What the cache knows of <paramref name="digest"/>; null when it does not hold it.</summary>
    public async ValueTask<ContentEntry?> LookupAsync(Digest digest, CancellationToken cancellationToken)
    {
        if (Hot.TryGet(digest.Value, out var hot))
        {
            return hot.Info;
        }

        if (await _index.GetContentAsync(digest).ConfigureAwait(false) is { } entry)
        {
            return entry;
        }

        if (_leftInPlace.TryGetValue(digest.Value, out var damage))
        {
            // Found damaged before: never learned from its file again. Each look tries to move it aside (one rename).
            var moved = await _store.QuarantineAsync(digest, damage, cancellationToken).ConfigureAwait(false);
            if (moved is StorageStatus.Ok or StorageStatus.NotFound)
            {
                _leftInPlace.TryRemove(digest.Value, out _);
                Log.QuarantinedLater(_logger, digest.Value, moved);
            }

            return _shared is null ? null : await LookupSharedAsync(digest, cancellationToken).ConfigureAwait(false);
        }

        // Not in the index: the files decide, and the index learns.
        var stat = await _store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        if (!stat.Exists)
        {
            return _shared is null ? null : await LookupSharedAsync(digest, cancellationToken).ConfigureAwait(false);
        }

        var found = new ContentEntry(stat.Size, ContentKind.Unknown, null, _time.GetUtcNow());
        _index.PutContent(digest, found);
        if (_indexTrusted && _index.AcceptsWrites)
        {
            // Put there behind the index's back (an offline import, say): count it now. While rebuilding, the rebuild
            // counts; an index that takes no writes does not learn it, and would count it again at every look.
            Counted(stat.Size, 1);
        }

        return found;
    }

    /// <summary>Whether the store itself holds the object whole (for checks that answer for what survives a restart). Changes nothing.</summary>
    public async ValueTask<bool> IsStoredAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken)
    {
        var stat = await _store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        if (!stat.Exists && _shared is not null)
        {
            stat = await _shared.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        }

        return stat.Exists && (expectedSize is not { } size || size < 0 || stat.Size == size);
    }

    /// <summary>
    /// Opens a cached object for streaming. The file's size must be the indexed size: a truncated or grown file
    /// is quarantined and reported <see cref="CachedContentStatus.Damaged"/>, never served short.
    /// </summary>
    public async ValueTask<(CachedContentStatus Status, IContentReader? Reader)> OpenAsync(Digest digest, ContentEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Remote)
        {
            return await OpenSharedAsync(digest, entry.Size, cancellationToken).ConfigureAwait(false);
        }

        var (status, reader) = await _store.OpenReadAsync(digest, entry.Size, cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case StorageStatus.Ok:
                return (CachedContentStatus.Ok, reader);
            case StorageStatus.NotFound:
                Forget(digest, entry.Size);
                // Evicted from this node since it was looked up: the shared store may still hold it.
                return _shared is null ? (CachedContentStatus.Missing, null) : await OpenSharedAsync(digest, entry.Size, cancellationToken).ConfigureAwait(false);
            case StorageStatus.Mismatch:
                await QuarantineAsync(digest, entry.Size, QuarantineReason.Size, cancellationToken).ConfigureAwait(false);
                return (CachedContentStatus.Damaged, null);
            default:
                Log.ReadFailed(_logger, digest.Value, status);
                return (CachedContentStatus.Unreadable, null);
        }
    }

    /// <summary>
    /// The bytes of a small object (a manifest, a config, a small layer), from memory or from its file, hashed
    /// when loaded from the file: damaged bytes are quarantined, never returned.
    /// </summary>
    public async ValueTask<(CachedContentStatus Status, byte[]? Content)> ReadSmallAsync(Digest digest, ContentEntry entry, CancellationToken cancellationToken)
    {
        if (Hot.TryGet(digest.Value, out var hot))
        {
            return (CachedContentStatus.Ok, hot.Content);
        }

        var (status, reader) = await OpenAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (status != CachedContentStatus.Ok)
        {
            return (status, null);
        }

        byte[] content;
        using (reader)
        {
            content = new byte[entry.Size];
            var read = 0;
            try
            {
                while (read < content.Length)
                {
                    var n = await reader!.ReadAsync(read, content.AsMemory(read), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }

                    read += n;
                }
            }
            catch (IOException ex)
            {
                Log.ReadFailed(_logger, digest.Value, StorageErrors.Classify(ex));
                return (CachedContentStatus.Unreadable, null);
            }

            if (read != content.Length)
            {
                await QuarantineAsync(digest, entry.Size, QuarantineReason.Size, cancellationToken).ConfigureAwait(false);
                return (CachedContentStatus.Damaged, null);
            }
        }

        if (!digest.Matches(content))
        {
            await QuarantineAsync(digest, entry.Size, QuarantineReason.Digest, cancellationToken).ConfigureAwait(false);
            return (CachedContentStatus.Damaged, null);
        }

        Hot.Add(digest.Value, content, entry);
        return (CachedContentStatus.Ok, content);
    }

    /// <summary>
    /// Settles what an object found in the files (kind <see cref="ContentKind.Unknown"/>) is, from what is recorded
    /// beside it: a manifest (hashed whenever it is loaded), or a blob found in the files
    /// (<see cref="ContentKind.FoundBlob"/>, which <see cref="VerifyAsync"/> hashes before it is streamed: only a
    /// verified write or a hash makes a large blob's file trusted); and which private upstreams it came from.
    /// Teaches the index. A remote object's attributes come from the shared store, which verified its bytes.
    /// </summary>
    public async ValueTask<ContentEntry> ResolveAsync(Digest digest, ContentEntry entry, CancellationToken cancellationToken)
    {
        if (entry.Kind != ContentKind.Unknown)
        {
            return entry;
        }

        var attributes = await StoreOf(entry).GetAttributesAsync(digest, cancellationToken).ConfigureAwait(false);
        var resolved = entry with
        {
            Kind = attributes.MediaType is not null ? ContentKind.Manifest : entry.Remote ? ContentKind.Blob : ContentKind.FoundBlob,
            MediaType = attributes.MediaType,
            Origins = OriginSet.FromNames(attributes.PrivateOrigins),
        };
        if (!entry.Remote)
        {
            _index.PutContent(digest, resolved);
        }

        Hot.Refresh(digest.Value, resolved);
        return resolved;
    }

    /// <summary>
    /// Records that <paramref name="origin"/> holds an object the cache already has: a public upstream makes it
    /// public; a private one joins its set. Returns the entry as it is now.
    /// </summary>
    public async ValueTask<ContentEntry> VouchAsync(Digest digest, ContentEntry entry, ContentOrigin origin, CancellationToken cancellationToken)
    {
        entry = await ResolveAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (entry.Origins.IsPublic || entry.Origins.Contains(origin.Name))
        {
            return entry;
        }

        var origins = origin.IsPublic ? OriginSet.Public : entry.Origins.With(origin.Name);
        var store = StoreOf(entry);
        var names = origin.IsPublic ? [] : (await store.GetAttributesAsync(digest, cancellationToken).ConfigureAwait(false)).PrivateOrigins.Append(origin.Name).Distinct().ToList();
        if (await store.SetOriginsAsync(digest, names, cancellationToken).ConfigureAwait(false) != StorageStatus.Ok)
        {
            // Unrecorded: the next request proves it again.
            return entry with { Origins = origins };
        }

        if (_shared is not null && !entry.Remote)
        {
            // The shared copy learns it too (best effort: another replica proves it again if this is lost).
            await _shared.Store.SetOriginsAsync(digest, names, cancellationToken).ConfigureAwait(false);
        }

        var vouched = entry with { Origins = origins };
        if (entry.Remote)
        {
            Hot.Refresh(digest.Value, vouched);
            return vouched;
        }

        _index.PutContent(digest, vouched);
        Hot.Refresh(digest.Value, vouched);
        return vouched;
    }

    /// <summary>
    /// Hashes a blob the index learned from the files (after a crash or with a lost index, kind
    /// <see cref="ContentKind.FoundBlob"/>): its indexed size is then the file's own, so a file cut short or damaged
    /// would pass the size check when opened. A damaged object is quarantined; a whole one is indexed as a
    /// <see cref="ContentKind.Blob"/> and is not hashed again.
    /// </summary>
    public async ValueTask<(CachedContentStatus Status, ContentEntry Entry)> VerifyAsync(Digest digest, ContentEntry entry, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        VerifyResult result;
        try
        {
            result = await ContentVerifier.VerifyAsync(_store, new StoredObject(digest, entry.Size, entry.LastAccess), buffer, pace: null, cancellationToken)
                .ConfigureAwait(false);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        switch (result)
        {
            case VerifyResult.Ok:
                var verified = entry with { Kind = ContentKind.Blob };
                _index.PutContent(digest, verified);
                Hot.Refresh(digest.Value, verified);
                return (CachedContentStatus.Ok, verified);
            case VerifyResult.WrongSize or VerifyResult.WrongDigest:
                await QuarantineAsync(digest, entry.Size, result == VerifyResult.WrongSize ? QuarantineReason.Size : QuarantineReason.Digest, cancellationToken)
                    .ConfigureAwait(false);
                return (CachedContentStatus.Damaged, entry);
            case VerifyResult.Gone:
                Forget(digest, entry.Size);
                return (CachedContentStatus.Missing, entry);
            default:
                Log.ReadFailed(_logger, digest.Value, StorageStatus.IoError);
                return (CachedContentStatus.Unreadable, entry);
        }
    }

    /// <summary>Starts writing new content. A failure to start is a storage fault: the cache is marked degraded.</summary>
    public ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginWriteAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken) =>
        BeganAsync(digest, _store.BeginWriteAsync(digest, expectedSize, cancellationToken));

    /// <summary>As <see cref="BeginWriteAsync"/>, for content nobody reads before it is committed (see <see cref="IContentStore.BeginBulkWriteAsync"/>).</summary>
    public ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginBulkWriteAsync(Digest digest, long size, CancellationToken cancellationToken) =>
        BeganAsync(digest, _store.BeginBulkWriteAsync(digest, size, cancellationToken));

    private async ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeganAsync(Digest digest, ValueTask<(StorageStatus Status, IContentWriter? Writer)> begin)
    {
        var (status, writer) = await begin.ConfigureAwait(false);
        if (StorageErrors.IsWriteFault(status))
        {
            _health.WriteFailed(status, "blob " + digest.Value);
        }

        return (status, writer);
    }

    /// <summary>
    /// Commits what <paramref name="writer"/> holds (verified by the store) and indexes it. <see cref="StorageStatus.Ok"/>
    /// and <see cref="StorageStatus.AlreadyExists"/> mean the object is cached now.
    /// </summary>
    public async ValueTask<StorageStatus> CommitAsync(IContentWriter writer, string? mediaType, ContentOrigin origin, CancellationToken cancellationToken)
    {
        var status = await writer.CommitAsync(mediaType, origin.IsPublic ? null : [origin.Name], cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case StorageStatus.Ok:
                _health.WriteSucceeded();
                _index.PutContent(writer.Digest, new ContentEntry(
                    writer.Written, mediaType is null ? ContentKind.Blob : ContentKind.Manifest, mediaType, _time.GetUtcNow(),
                    origin.IsPublic ? OriginSet.Public : OriginSet.Of(origin.Name)));
                Counted(writer.Written, 1);
                ContentAdded?.Invoke();
                Used?.Invoke(writer.Digest, _time.GetUtcNow());
                _shared?.Share(_store, writer.Digest, writer.Written, new ContentAttributes(mediaType, origin.IsPublic ? [] : [origin.Name]));
                break;
            case StorageStatus.AlreadyExists:
                _health.WriteSucceeded();
                var known = await _index.GetContentAsync(writer.Digest).ConfigureAwait(false);
                var existing = known ?? new ContentEntry(writer.Written, ContentKind.Unknown, null, _time.GetUtcNow());
                existing = await ResolveAsync(writer.Digest, existing, cancellationToken).ConfigureAwait(false);
                if (mediaType is not null && existing.Kind != ContentKind.Manifest)
                {
                    // Its bytes were a blob; now they are known to be a manifest too. A manifest stays a manifest.
                    existing = existing with { Kind = ContentKind.Manifest, MediaType = mediaType };
                    _index.PutContent(writer.Digest, existing);
                }

                await VouchAsync(writer.Digest, existing, origin, cancellationToken).ConfigureAwait(false);
                if (known is null && _indexTrusted)
                {
                    Counted(writer.Written, 1);
                }

                break;
            case StorageStatus.Mismatch:
                break;
            default:
                _health.WriteFailed(status, "blob " + writer.Digest.Value);
                break;
        }

        return status;
    }

    /// <summary>Stores a verified manifest; when the disk refuses, the caller serves it anyway (the status says so).</summary>
    public async ValueTask<StorageStatus> PutManifestAsync(Digest digest, byte[] content, string mediaType, ContentOrigin origin, CancellationToken cancellationToken)
    {
        var (status, writer) = await BeginWriteAsync(digest, content.Length, cancellationToken).ConfigureAwait(false);
        if (writer is null)
        {
            return status;
        }

        await using (writer.ConfigureAwait(false))
        {
            status = await writer.WriteAsync(content, cancellationToken).ConfigureAwait(false);
            if (status != StorageStatus.Ok)
            {
                _health.WriteFailed(status, "manifest " + digest.Value);
                return status;
            }

            status = await CommitAsync(writer, mediaType, origin, cancellationToken).ConfigureAwait(false);
        }

        if (status is StorageStatus.Ok or StorageStatus.AlreadyExists && await _index.GetContentAsync(digest).ConfigureAwait(false) is { } entry)
        {
            Hot.Add(digest.Value, content, entry);
        }

        return status;
    }

    /// <summary>
    /// Records an access for least-recently-used eviction, in the index, at most once a minute per object (an
    /// entry read from the index carries its last access, so this costs nothing when it is recent).
    /// </summary>
    public void Touch(Digest digest, ContentEntry entry)
    {
        var now = _time.GetUtcNow();
        if (entry.Remote || now - entry.LastAccess < TouchGranularity)
        {
            return;
        }

        var touched = entry with { LastAccess = now };
        _index.PutContent(digest, touched);
        Used?.Invoke(digest, now);
        Hot.Refresh(digest.Value, touched);
    }

    /// <summary>Takes a damaged object out of service: moved aside, dropped from the index and memory, counted.</summary>
    public async ValueTask QuarantineAsync(Digest digest, long size, QuarantineReason reason, CancellationToken cancellationToken)
    {
        Hot.Remove(digest.Value);
        var status = await _store.QuarantineAsync(digest, reason, cancellationToken).ConfigureAwait(false);
        _index.DeleteContent(digest);
        // Moved aside, or left where it is (a read-only disk) but no longer indexed: either way it leaves the count,
        // and a file found again is counted again when it is learned. Not found: whoever removed it counted that.
        if (status is not StorageStatus.NotFound)
        {
            Counted(-size, -1);
        }

        if (status is not (StorageStatus.Ok or StorageStatus.NotFound))
        {
            // The disk refuses changes: new downloads are relayed rather than written next to a file that cannot go.
            _health.WriteFailed(status, "quarantine of " + digest.Value);
            if (_leftInPlace.Count < MaxLeftInPlace)
            {
                _leftInPlace[digest.Value] = reason;
            }
        }
        else
        {
            _leftInPlace.TryRemove(digest.Value, out _);
        }

        _metrics.Quarantined(reason == QuarantineReason.Size ? QuarantineReasons.Size : QuarantineReasons.Digest);
        Log.Quarantined(_logger, digest.Value, reason, status);
    }

    /// <summary>Removes an object: its file first, then what describes it. Returns the bytes freed.</summary>
    public async ValueTask<long> EvictAsync(Digest digest, long size, CancellationToken cancellationToken)
    {
        Hot.Remove(digest.Value);
        var status = await _store.DeleteAsync(digest, cancellationToken).ConfigureAwait(false);
        if (status is not (StorageStatus.Ok or StorageStatus.NotFound))
        {
            return 0;
        }

        _index.DeleteContent(digest);
        if (status == StorageStatus.Ok)
        {
            Counted(-size, -1);
            return size;
        }

        return 0;
    }

    /// <summary>Drops an object the index knew but whose file is gone.</summary>
    private void Forget(Digest digest, long size)
    {
        Hot.Remove(digest.Value);
        _index.DeleteContent(digest);
        if (_indexTrusted)
        {
            Counted(-size, -1);
        }
    }

    private void Counted(long bytes, long objects)
    {
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Add(ref _objects, objects);
    }

    public void Dispose() => _index.Dispose();

    private static partial class Log
    {
        [LoggerMessage(2004, LogLevel.Error, "Cached object {Digest} is damaged ({Reason}) and was quarantined ({Status}); it will be fetched again when needed")]
        public static partial void Quarantined(ILogger logger, string digest, QuarantineReason reason, StorageStatus status);

        [LoggerMessage(2007, LogLevel.Information, "Damaged object {Digest}, left in place by a disk that refused changes, is moved aside now ({Status})")]
        public static partial void QuarantinedLater(ILogger logger, string digest, StorageStatus status);

        [LoggerMessage(2005, LogLevel.Error, "Cached object {Digest} could not be read: {Status}")]
        public static partial void ReadFailed(ILogger logger, string digest, StorageStatus status);
    }
}
