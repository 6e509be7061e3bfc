using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.WarmUp;

namespace MirrorProxy.Bundles;

/// <summary>
/// Everything bundles need from the cache, in one place: whether content is there, staging blobs, publishing
/// blobs, manifests and tags, pinning, enumerating content for an inventory, and the small state documents of
/// bundles themselves (this mirror's identity, export and import sequence numbers). Nothing else in
/// <c>Bundles/</c> touches the cache.
/// </summary>
internal sealed class BundleImportTarget
{
    private const string StatePrefix = MetadataKeys.StatePrefix + "/bundles/";
    private const int MaxStateDocument = 256;

    private readonly MirrorCache _cache;
    private readonly PinStore _pins;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _mirrorId;

    public BundleImportTarget(MirrorCache cache, PinStore pins)
    {
        _cache = cache;
        _pins = pins;
    }

    /// <summary>This mirror's identity: random, made once, kept with the cache.</summary>
    public async ValueTask<string> GetMirrorIdAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _mirrorId) is { } known)
        {
            return known;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await ReadStateAsync("mirror-id", cancellationToken).ConfigureAwait(false) is { Length: 32 } stored)
            {
                return _mirrorId = stored;
            }

            var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            await WriteStateAsync("mirror-id", id, cancellationToken).ConfigureAwait(false);
            return _mirrorId = id;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Takes the next export sequence number of this mirror.</summary>
    public async ValueTask<long> NextExportSequenceAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var next = await ReadNumberAsync("export-sequence", cancellationToken).ConfigureAwait(false) + 1;
            await WriteStateAsync("export-sequence", next.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
            return next;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The highest sequence imported from a source mirror; 0 when none was.</summary>
    public ValueTask<long> LastImportedSequenceAsync(string sourceMirrorId, CancellationToken cancellationToken) =>
        ReadNumberAsync(SourceKey(sourceMirrorId), cancellationToken);

    public async ValueTask RecordImportedSequenceAsync(string sourceMirrorId, long sequence, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (sequence > await LastImportedSequenceAsync(sourceMirrorId, cancellationToken).ConfigureAwait(false))
            {
                await WriteStateAsync(SourceKey(sourceMirrorId), sequence.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The size of the content when the cache holds it (asked of the store, the truth: this node's, then the one
    /// replicas share); null when it does not.
    /// </summary>
    public async ValueTask<long?> StatAsync(Digest digest, CancellationToken cancellationToken)
    {
        var stat = await _cache.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        if (!stat.Exists && _cache.Shared is { } shared)
        {
            stat = await shared.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        }

        return stat.Exists ? stat.Size : null;
    }

    /// <summary>
    /// Begins writing a blob that is not in the cache yet: invisible to readers until <see cref="CommitAsync"/> or
    /// <see cref="CommitManifestAsync"/>, gone after <see cref="AbortAsync"/> (and after a crash: the store's
    /// unfinished writes do not survive a restart). A store that cannot take it answers with an <see cref="IOException"/>,
    /// which the reader turns into a refusal.
    /// </summary>
    public async ValueTask<(StagedBlob Blob, Stream Content)> StageAsync(Digest digest, long size, CancellationToken cancellationToken)
    {
        var (status, writer) = await _cache.BeginBulkWriteAsync(digest, size, cancellationToken).ConfigureAwait(false);
        if (writer is null)
        {
            throw new IOException($"the cache cannot take {digest}: {status}");
        }

        var blob = new StagedBlob(writer, digest, size);
        return (blob, new ContentWriterStream(writer));
    }

    /// <summary>Closes what was written. The bytes are made durable by the commit, which also verifies them.</summary>
    public static ValueTask SealAsync(Stream content) => content.DisposeAsync();

    /// <summary>The bytes of a staged blob (a manifest, which is small).</summary>
    public static async Task<byte[]> ReadStagedAsync(StagedBlob blob, CancellationToken cancellationToken)
    {
        var content = new byte[blob.Size];
        var read = 0;
        while (read < content.Length)
        {
            var n = await blob.Writer.ReadAsync(read, content.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"staged {blob.Digest} ends after {read} of {blob.Size} bytes");
            }

            read += n;
        }

        return content;
    }

    /// <summary>Publishes a verified blob at its content address, as content of <paramref name="origin"/>.</summary>
    public ValueTask<StorageStatus> CommitAsync(StagedBlob blob, ContentOrigin origin, CancellationToken cancellationToken) =>
        CommitAsync(blob, mediaType: null, origin, cancellationToken);

    /// <summary>Publishes a verified manifest with its media type (manifests are kept with their type).</summary>
    public ValueTask<StorageStatus> CommitManifestAsync(StagedBlob blob, string mediaType, ContentOrigin origin, CancellationToken cancellationToken) =>
        CommitAsync(blob, mediaType, origin, cancellationToken);

    private async ValueTask<StorageStatus> CommitAsync(StagedBlob blob, string? mediaType, ContentOrigin origin, CancellationToken cancellationToken)
    {
        var status = await _cache.CommitAsync(blob.Writer, mediaType, origin, cancellationToken).ConfigureAwait(false);
        if (status is StorageStatus.Ok or StorageStatus.AlreadyExists)
        {
            blob.Committed = true;
            await blob.Writer.DisposeAsync().ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>Drops a staged blob that was not committed.</summary>
    public static async ValueTask AbortAsync(StagedBlob blob)
    {
        if (!blob.Committed)
        {
            await blob.Writer.AbortAsync().ConfigureAwait(false);
        }

        await blob.Writer.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The bytes of a cached manifest; null when the cache does not hold a readable one.</summary>
    public async ValueTask<byte[]?> ReadContentAsync(Digest digest, CancellationToken cancellationToken)
    {
        if (await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is not { } entry || entry.Size > PullThrough.ManifestService.MaxManifestSize)
        {
            return null;
        }

        var (status, content) = await _cache.ReadSmallAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        return status == CachedContentStatus.Ok ? content : null;
    }

    /// <summary>
    /// Points a tag at a manifest, as last seen at <paramref name="seenAt"/>, unless the cache saw the tag later
    /// (a newer pull, a newer bundle): an old bundle never moves a tag back.
    /// </summary>
    public async Task<bool> PutTagAsync(string upstream, string repository, string tag, Digest digest, string mediaType, long size, DateTimeOffset seenAt, CancellationToken cancellationToken)
    {
        var current = await _cache.GetTagAsync(upstream, repository, tag, cancellationToken).ConfigureAwait(false);
        if (current is not null && current.FetchedAt > seenAt && current.Digest != digest)
        {
            return false;
        }

        await _cache.PutTagAsync(upstream, repository, tag, new TagRecord(digest, mediaType, size, seenAt), digestChanged: current?.Digest != digest, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Adds images and their content to a pin set (created when absent); what the set pinned before stays pinned.</summary>
    public async Task PinAsync(string name, IEnumerable<string> images, IEnumerable<string> digests, string platforms, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var existing = _pins.Get(name);
        var allImages = (existing?.Images ?? []).Concat(images).Distinct(StringComparer.Ordinal).ToList();
        var allDigests = (existing?.Digests ?? []).Concat(digests).Distinct(StringComparer.Ordinal).ToList();
        var allPlatforms = existing is null || existing.Platforms == platforms ? platforms : "as imported";
        await _pins.PutAsync(new PinSet(name, allImages, allPlatforms, now, allDigests), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every content object in the cache (the store replicas share, when there is one), as the store lists them, one at a time.</summary>
    public async IAsyncEnumerable<Digest> EnumerateContentAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var content in (_cache.Shared?.Store ?? _cache.Store).EnumerateAsync(namedSince: DateTimeOffset.MinValue, fromShard: null, cancellationToken).ConfigureAwait(false))
        {
            yield return content.Digest;
        }
    }

    private static string SourceKey(string sourceMirrorId) =>
        "sources/" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sourceMirrorId)))[..32];

    private async ValueTask<string?> ReadStateAsync(string name, CancellationToken cancellationToken) =>
        await _cache.Metadata.ReadAsync(StatePrefix + name, MaxStateDocument, cancellationToken).ConfigureAwait(false) is { } bytes
            ? Encoding.UTF8.GetString(bytes).Trim()
            : null;

    private async ValueTask<long> ReadNumberAsync(string name, CancellationToken cancellationToken) =>
        long.TryParse(await ReadStateAsync(name, cancellationToken).ConfigureAwait(false), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : 0;

    private async ValueTask WriteStateAsync(string name, string content, CancellationToken cancellationToken)
    {
        var status = await _cache.Metadata.WriteAsync(StatePrefix + name, Encoding.UTF8.GetBytes(content + "\n"), cancellationToken).ConfigureAwait(false);
        if (status != StorageStatus.Ok)
        {
            throw new IOException($"the cache could not record bundle state {name}: {status}");
        }
    }

    /// <summary>
    /// A write-only stream over a content writer: what the bundle reader copies a blob into. The writer hashes what
    /// it writes (to verify it at commit); the reader takes that hash rather than hashing the blob a second time.
    /// </summary>
    private sealed class ContentWriterStream(IContentWriter writer) : Stream, IHashingDestination
    {
        public bool HashesSha256 { get; } = !writer.Digest.IsSha512 && writer.GetCurrentHash(stackalloc byte[64]) == 32;

        public void GetSha256(Span<byte> hash)
        {
            if (writer.GetCurrentHash(hash) != 32)
            {
                throw new InvalidOperationException($"the writer of {writer.Digest} does not hash with SHA-256");
            }
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => writer.Written;

        public override long Position { get => writer.Written; set => throw new NotSupportedException(); }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var status = await writer.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (status != StorageStatus.Ok)
            {
                throw new IOException($"the cache could not write {writer.Digest}: {StorageErrors.Describe(status)}");
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("asynchronous writes only");

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>A blob being written into the cache by an import, not yet visible to readers.</summary>
internal sealed class StagedBlob(IContentWriter writer, Digest digest, long size)
{
    internal IContentWriter Writer { get; } = writer;

    public Digest Digest { get; } = digest;

    public long Size { get; } = size;

    public bool Committed { get; internal set; }
}
