using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.WarmUp;

namespace MirrorProxy.Bundles;

/// <summary>
/// Everything bundles need from the cache, in one place: whether content is there, staging files, publishing
/// blobs, manifests and tags, pinning, enumerating content for an inventory, and the small state files of
/// bundles themselves (this mirror's identity, export and import sequence numbers). Nothing else in
/// <c>Bundles/</c> touches the cache.
/// </summary>
internal sealed class BundleImportTarget
{
    private readonly MirrorCache _cache;
    private readonly PinStore _pins;
    private readonly string _directory;
    private readonly Lock _gate = new();
    private string? _mirrorId;

    public BundleImportTarget(MirrorCache cache, PinStore pins)
    {
        _cache = cache;
        _pins = pins;
        _directory = Path.Combine(cache.Store.Root, "bundles");
    }

    /// <summary>This mirror's identity: random, made once, kept with the cache.</summary>
    public string MirrorId
    {
        get
        {
            if (_mirrorId is { } known)
            {
                return known;
            }

            lock (_gate)
            {
                var path = Path.Combine(_directory, "mirror-id");
                if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: 32 } stored)
                {
                    return _mirrorId = stored;
                }

                var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
                WriteStateFile(path, id);
                return _mirrorId = id;
            }
        }
    }

    /// <summary>Takes the next export sequence number of this mirror.</summary>
    public long NextExportSequence()
    {
        lock (_gate)
        {
            var path = Path.Combine(_directory, "export-sequence");
            var next = ReadNumber(path) + 1;
            WriteStateFile(path, next.ToString(CultureInfo.InvariantCulture));
            return next;
        }
    }

    /// <summary>The highest sequence imported from a source mirror; 0 when none was.</summary>
    public long LastImportedSequence(string sourceMirrorId) => ReadNumber(SourcePath(sourceMirrorId));

    public void RecordImportedSequence(string sourceMirrorId, long sequence)
    {
        lock (_gate)
        {
            if (sequence > LastImportedSequence(sourceMirrorId))
            {
                WriteStateFile(SourcePath(sourceMirrorId), sequence.ToString(CultureInfo.InvariantCulture));
            }
        }
    }

    /// <summary>The size of the content when the cache holds it (asked of its file, the truth); null when it does not.</summary>
    public ValueTask<long?> StatAsync(Digest digest, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_cache.Store.TryStat(digest, out var size) ? size : (long?)null);

    /// <summary>
    /// Begins writing a blob that is not in the cache yet: staged in the cache's <c>tmp/</c> (which the mirror empties
    /// at start), invisible to readers until <see cref="Commit"/> or <see cref="CommitManifestAsync"/>, and gone
    /// after <see cref="Abort"/>.
    /// </summary>
    public ValueTask<(StagedBlob Blob, Stream Content)> StageAsync(Digest digest, long size, CancellationToken cancellationToken)
    {
        var blob = new StagedBlob(_cache.Store.NewTempPath(), digest, size);
        Stream content = new FileStream(blob.Path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        return ValueTask.FromResult((blob, content));
    }

    /// <summary>Makes what was written durable and closes it: a crash after the commit never leaves a short blob.</summary>
    public async Task SealAsync(StagedBlob blob, Stream content, CancellationToken cancellationToken)
    {
        await content.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (content is FileStream file)
        {
            file.Flush(flushToDisk: true);
        }

        await content.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The bytes of a staged blob (a manifest, which is small).</summary>
    public Task<byte[]> ReadStagedAsync(StagedBlob blob, CancellationToken cancellationToken) => File.ReadAllBytesAsync(blob.Path, cancellationToken);

    /// <summary>Moves a verified, sealed blob to its content address.</summary>
    public Task CommitAsync(StagedBlob blob, CancellationToken cancellationToken)
    {
        _cache.PublishBlob(blob.Path, blob.Digest, blob.Size);
        blob.Committed = true;
        return Task.CompletedTask;
    }

    /// <summary>Stores a verified staged manifest with its media type (manifests are kept with their type).</summary>
    public async Task CommitManifestAsync(StagedBlob blob, string mediaType, CancellationToken cancellationToken)
    {
        await _cache.PutManifestAsync(blob.Digest, await ReadStagedAsync(blob, cancellationToken).ConfigureAwait(false), mediaType, cancellationToken).ConfigureAwait(false);
        await AbortAsync(blob).ConfigureAwait(false);
        blob.Committed = true;
    }

    /// <summary>Drops a staged blob that was not committed.</summary>
    public ValueTask AbortAsync(StagedBlob blob)
    {
        if (!blob.Committed)
        {
            File.Delete(blob.Path);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<byte[]?> ReadContentAsync(Digest digest, CancellationToken cancellationToken) => _cache.ReadContentAsync(digest, cancellationToken);

    /// <summary>
    /// Points a tag at a manifest, as last seen at <paramref name="seenAt"/>, unless the cache saw the tag later
    /// (a newer pull, a newer bundle): an old bundle never moves a tag back.
    /// </summary>
    public async Task<bool> PutTagAsync(string upstream, string repository, string tag, Digest digest, string mediaType, long size, DateTimeOffset seenAt, CancellationToken cancellationToken)
    {
        if (await _cache.TryGetTagAsync(upstream, repository, tag).ConfigureAwait(false) is { } current && current.FetchedAt > seenAt && current.Digest != digest)
        {
            return false;
        }

        await _cache.PutTagAsync(upstream, repository, tag, new TagRecord(digest, mediaType, size, seenAt), cancellationToken).ConfigureAwait(false);
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

    /// <summary>Every content object in the cache, read from the files one at a time.</summary>
    public async IAsyncEnumerable<Digest> EnumerateContentAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var content in _cache.Store.EnumerateContent())
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return content.Digest;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    private string SourcePath(string sourceMirrorId)
    {
        var safe = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sourceMirrorId)))[..32];
        return Path.Combine(_directory, "sources", safe);
    }

    private static long ReadNumber(string path) =>
        File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : 0;

    private void WriteStateFile(string path, string content)
    {
        // Small and rare: written synchronously under the lock, flushed, then renamed into place.
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = _cache.Store.NewTempPath();
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            file.Write(Encoding.UTF8.GetBytes(content + "\n"));
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }
}

/// <summary>A blob being written into the cache by an import, not yet visible to readers.</summary>
internal sealed class StagedBlob(string path, Digest digest, long size)
{
    internal string Path { get; } = path;

    public Digest Digest { get; } = digest;

    public long Size { get; } = size;

    public bool Committed { get; internal set; }
}
