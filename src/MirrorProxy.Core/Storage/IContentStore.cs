using MirrorProxy.Oci;

namespace MirrorProxy.Storage;

/// <summary>An object as the store has it: its size and when it was last written.</summary>
internal readonly record struct StoredObject(Digest Digest, long Size, DateTimeOffset LastWrite)
{
    /// <summary>False for an object listed without its digest (see <see cref="IContentStore.EnumerateAsync"/>).</summary>
    public bool IsNamed => Digest.Value is not null;
}

/// <summary>
/// The unit a walk of a store goes in and can be resumed at: a digest's algorithm and the first two hex digits of
/// its encoded part (<c>sha256:ab</c>), the directory a file store keeps it in. Walks go shard by shard in ordinal order.
/// </summary>
internal static class ContentShards
{
    /// <summary>The shard of <paramref name="digest"/>, without building a string.</summary>
    public static ReadOnlySpan<char> Of(Digest digest) => digest.Value.AsSpan(0, digest.Algorithm.Length + 3);

    /// <summary>Whether the shard <paramref name="algorithm"/>:<paramref name="prefix"/> comes before <paramref name="fromShard"/>.</summary>
    public static bool IsBefore(ReadOnlySpan<char> algorithm, ReadOnlySpan<char> prefix, string? fromShard)
    {
        if (fromShard is null)
        {
            return false;
        }

        var colon = fromShard.IndexOf(':');
        if (colon < 0)
        {
            return false;
        }

        var byAlgorithm = algorithm.SequenceCompareTo(fromShard.AsSpan(0, colon));
        return byAlgorithm < 0 || (byAlgorithm == 0 && prefix.SequenceCompareTo(fromShard.AsSpan(colon + 1)) < 0);
    }
}

/// <summary>The answer to a stat: the status, and the size when the object exists.</summary>
internal readonly record struct ContentStat(StorageStatus Status, long Size)
{
    public bool Exists => Status == StorageStatus.Ok;
}

/// <summary>What is recorded with an object besides its bytes.</summary>
/// <param name="MediaType">The manifest media type; null for an object stored as a plain blob.</param>
/// <param name="PrivateOrigins">The private upstreams it came from; empty when it is public.</param>
internal readonly record struct ContentAttributes(string? MediaType, IReadOnlyList<string> PrivateOrigins);

/// <summary>Why an object is taken out of service.</summary>
internal enum QuarantineReason
{
    /// <summary>Its size is not the size it was stored with (a truncated or grown file).</summary>
    Size,
    /// <summary>Its bytes do not hash to its digest.</summary>
    Digest,
}

/// <summary>
/// Content addressed by digest: the bytes of blobs and manifests, which are the truth of the cache. Writes go
/// through an <see cref="IContentWriter"/> that other readers can follow while it grows, and end in a verified,
/// atomic commit or an abort, so a crash leaves either no object or a whole and verified one. Every outcome is a
/// value; nothing outside an implementation knows where or how the bytes are kept.
/// </summary>
internal interface IContentStore
{
    /// <summary>Asks the storage itself whether it holds <paramref name="digest"/>, and its size.</summary>
    ValueTask<ContentStat> StatAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>
    /// Opens an object for reading. When <paramref name="expectedSize"/> is given and the stored object has another
    /// size, the answer is <see cref="StorageStatus.Mismatch"/> and no reader: a short or grown file is never served.
    /// </summary>
    ValueTask<(StorageStatus Status, IContentReader? Reader)> OpenReadAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken);

    /// <summary>Starts writing an object; <see cref="StorageStatus.NoSpace"/> or <see cref="StorageStatus.ReadOnly"/> when the storage cannot take it.</summary>
    ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginWriteAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken);

    /// <summary>
    /// Starts writing an object that nobody reads until it is committed (a bundle import). A store may then write
    /// it back to its medium as it goes and keep none of it in memory; the commit's guarantees are the same.
    /// </summary>
    ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginBulkWriteAsync(Digest digest, long size, CancellationToken cancellationToken) =>
        BeginWriteAsync(digest, size, cancellationToken);

    /// <summary>
    /// Starts writing an object whose size and attributes are known from the start (a copy of a stored object). A
    /// store that sends the bytes on as they are written (a remote one) takes only this form, and records these
    /// attributes rather than those given to the commit; others take the commit's.
    /// </summary>
    ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginCopyAsync(Digest digest, long size, ContentAttributes attributes, CancellationToken cancellationToken) =>
        BeginWriteAsync(digest, size, cancellationToken);

    /// <summary>What is recorded with an object: its manifest media type (null for a plain blob) and the private upstreams it came from (none: public).</summary>
    ValueTask<ContentAttributes> GetAttributesAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>Records the manifest media type of an object that is already stored.</summary>
    ValueTask<StorageStatus> SetMediaTypeAsync(Digest digest, string mediaType, CancellationToken cancellationToken);

    /// <summary>Records the private upstreams an already stored object came from; none makes it public.</summary>
    ValueTask<StorageStatus> SetOriginsAsync(Digest digest, IReadOnlyCollection<string> privateOrigins, CancellationToken cancellationToken);

    ValueTask<StorageStatus> DeleteAsync(Digest digest, CancellationToken cancellationToken);

    /// <summary>Takes a damaged object out of service (kept aside for inspection where the store can).</summary>
    ValueTask<StorageStatus> QuarantineAsync(Digest digest, QuarantineReason reason, CancellationToken cancellationToken);

    /// <summary>
    /// Every stored object, without holding the listing in memory, shard by shard in the order of
    /// <see cref="ContentShards"/> (in no particular order within a shard); with <paramref name="fromShard"/>, the
    /// shards before it are skipped, so that a long walk stopped part-way can go on where it was. An object last
    /// written before <paramref name="namedSince"/> may come without its digest (<see cref="StoredObject.IsNamed"/>
    /// false): a walk that only counts those (the index rebuild after a crash) builds no string for each of millions of files.
    /// </summary>
    IAsyncEnumerable<StoredObject> EnumerateAsync(DateTimeOffset namedSince, string? fromShard, CancellationToken cancellationToken);

    /// <summary>Free space where new content is written; null when it cannot be told.</summary>
    long? FreeSpace();

    /// <summary>Whether new content can be written now (one small write; cheap enough for every readiness probe), and why not.</summary>
    ValueTask<(StorageStatus Status, string? Error)> ProbeWritableAsync(CancellationToken cancellationToken);
}

/// <summary>A stored object open for ranged reads.</summary>
internal interface IContentReader : IDisposable
{
    long Length { get; }

    /// <summary>Reads at <paramref name="offset"/>; 0 at the end.</summary>
    ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);
}

/// <summary>
/// An object being written. Appends are hashed as they go; <see cref="ReadAsync"/> serves what is written so far
/// to readers following the write, also after the commit, until the writer is disposed.
/// </summary>
internal interface IContentWriter : IAsyncDisposable
{
    Digest Digest { get; }

    long Written { get; }

    ValueTask<StorageStatus> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>
    /// The hash, in the digest's algorithm, of what was written so far, into <paramref name="destination"/>; its
    /// length, or 0 when this writer does not hash (its store verifies the digest itself). Lets a caller that must
    /// know whether the bytes verify before it commits use this hash rather than hash the same bytes again.
    /// </summary>
    int GetCurrentHash(Span<byte> destination);

    /// <summary>
    /// Verifies the digest (and the expected size, when one was given), makes the bytes durable and publishes them
    /// atomically, with <paramref name="mediaType"/> when the object is a manifest and <paramref name="privateOrigins"/>
    /// when it came from private upstreams (recorded before the bytes become visible, so a crash never leaves private
    /// content looking public). <see cref="StorageStatus.Ok"/> or <see cref="StorageStatus.AlreadyExists"/> mean the
    /// object is stored; an object that existed keeps its origins (the caller merges them).
    /// </summary>
    ValueTask<StorageStatus> CommitAsync(string? mediaType, IReadOnlyCollection<string>? privateOrigins, CancellationToken cancellationToken);

    /// <summary>Discards what was written. Nothing is published.</summary>
    ValueTask AbortAsync();
}
