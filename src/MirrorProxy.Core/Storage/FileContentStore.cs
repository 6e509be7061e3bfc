using System.IO.Enumeration;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using MirrorProxy.Oci;

namespace MirrorProxy.Storage;

/// <summary>
/// Content in files: <c>blobs/&lt;algorithm&gt;/&lt;first two hex digits&gt;/&lt;hex&gt;</c>, with a <c>.type</c> file beside
/// manifests. New objects are written to <c>tmp/</c>, hashed as they arrive, flushed, then renamed into place, so a
/// crash leaves either the old state or the new one; <c>tmp/</c> is emptied at start. Damaged objects move to
/// <c>quarantine/</c>, which keeps the newest few for inspection.
/// </summary>
internal sealed partial class FileContentStore : IContentStore
{
    private const string TypeSuffix = ".type";
    private const string OriginsSuffix = ".origins";
    private const int QuarantineKept = 32;

    private static readonly DateTimeOffset MissingFileTime = DateTimeOffset.FromFileTime(0);

    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public FileContentStore(CacheLayout layout, TimeProvider time, ILogger<FileContentStore> logger)
    {
        Layout = layout;
        _time = time;
        _logger = logger;
    }

    public CacheLayout Layout { get; }

    public ValueTask<ContentStat> StatAsync(Digest digest, CancellationToken cancellationToken)
    {
        try
        {
            var info = new FileInfo(Layout.BlobPath(digest));
            return ValueTask.FromResult(info.Exists ? new ContentStat(StorageStatus.Ok, info.Length) : new ContentStat(StorageStatus.NotFound, 0));
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return ValueTask.FromResult(new ContentStat(StorageErrors.Classify(ex), 0));
        }
    }

    public ValueTask<(StorageStatus Status, IContentReader? Reader)> OpenReadAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(Layout.BlobPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return ValueTask.FromResult<(StorageStatus, IContentReader?)>((StorageErrors.Classify(ex), null));
        }

        long length;
        try
        {
            length = RandomAccess.GetLength(handle);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            handle.Dispose();
            return ValueTask.FromResult<(StorageStatus, IContentReader?)>((StorageErrors.Classify(ex), null));
        }

        if (expectedSize is { } expected && expected != length)
        {
            handle.Dispose();
            return ValueTask.FromResult<(StorageStatus, IContentReader?)>((StorageStatus.Mismatch, null));
        }

        return ValueTask.FromResult<(StorageStatus, IContentReader?)>((StorageStatus.Ok, new FileContentReader(handle, length)));
    }

    public ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginWriteAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken) =>
        BeginWrite(digest, expectedSize, writeBehind: false);

    /// <summary>
    /// As <see cref="BeginWriteAsync"/>, for an object nobody reads before its commit: written back to the disk as it
    /// goes and dropped from the page cache, so that a bundle of many gigabytes neither pushes the hot content out of
    /// memory nor leaves the flush before each commit with the whole blob to write.
    /// </summary>
    public ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginBulkWriteAsync(Digest digest, long size, CancellationToken cancellationToken) =>
        BeginWrite(digest, size, writeBehind: true);

    private ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginWrite(Digest digest, long? expectedSize, bool writeBehind)
    {
        var temp = Layout.NewTempPath();
        try
        {
            var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous);
            return ValueTask.FromResult<(StorageStatus, IContentWriter?)>((StorageStatus.Ok, new FileContentWriter(this, digest, expectedSize, temp, handle, writeBehind)));
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            var status = StorageErrors.Classify(ex);
            Log.WriteFailed(_logger, digest.Value, status, ex.Message);
            return ValueTask.FromResult<(StorageStatus, IContentWriter?)>((status == StorageStatus.NotFound ? StorageStatus.IoError : status, null));
        }
    }

    public async ValueTask<ContentAttributes> GetAttributesAsync(Digest digest, CancellationToken cancellationToken)
    {
        var path = Layout.BlobPath(digest);
        var mediaType = (await ReadSidecarAsync(path + TypeSuffix, cancellationToken).ConfigureAwait(false))?.Trim();
        var origins = await ReadSidecarAsync(path + OriginsSuffix, cancellationToken).ConfigureAwait(false);
        return new ContentAttributes(
            string.IsNullOrEmpty(mediaType) ? null : mediaType,
            origins is null ? [] : origins.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    private static async ValueTask<string?> ReadSidecarAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return null;
        }
    }

    public async ValueTask<StorageStatus> SetOriginsAsync(Digest digest, IReadOnlyCollection<string> privateOrigins, CancellationToken cancellationToken)
    {
        var path = Layout.BlobPath(digest) + OriginsSuffix;
        if (privateOrigins.Count > 0)
        {
            return await WriteAtomicallyAsync(path, Encoding.UTF8.GetBytes(string.Join('\n', privateOrigins)), cancellationToken).ConfigureAwait(false);
        }

        try
        {
            File.Delete(path);
            return StorageStatus.Ok;
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return StorageErrors.Classify(ex);
        }
    }

    public async ValueTask<StorageStatus> SetMediaTypeAsync(Digest digest, string mediaType, CancellationToken cancellationToken)
    {
        var path = Layout.BlobPath(digest) + TypeSuffix;
        if (File.Exists(path))
        {
            return StorageStatus.Ok;
        }

        return await WriteAtomicallyAsync(path, Encoding.UTF8.GetBytes(mediaType), cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<StorageStatus> DeleteAsync(Digest digest, CancellationToken cancellationToken)
    {
        var path = Layout.BlobPath(digest);
        try
        {
            var existed = File.Exists(path);
            File.Delete(path);
            File.Delete(path + TypeSuffix);
            File.Delete(path + OriginsSuffix);
            return ValueTask.FromResult(existed ? StorageStatus.Ok : StorageStatus.NotFound);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return ValueTask.FromResult(StorageErrors.Classify(ex));
        }
    }

    public ValueTask<StorageStatus> QuarantineAsync(Digest digest, QuarantineReason reason, CancellationToken cancellationToken)
    {
        var path = Layout.BlobPath(digest);
        try
        {
            Directory.CreateDirectory(Layout.QuarantineDirectory);
            var target = Path.Combine(Layout.QuarantineDirectory,
                $"{digest.Algorithm}-{digest.Encoded}-{reason.ToString().ToLowerInvariant()}-{_time.GetUtcNow().ToUnixTimeMilliseconds()}");
            File.Move(path, target);
            File.Delete(path + TypeSuffix);
            File.Delete(path + OriginsSuffix);
            TrimQuarantine();
            return ValueTask.FromResult(StorageStatus.Ok);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            // Not movable (a read-only disk, say): at least make sure it is never served again.
            var status = StorageErrors.Classify(ex);
            if (status != StorageStatus.NotFound)
            {
                try
                {
                    File.Delete(path);
                }
                catch (Exception deleteError) when (StorageErrors.IsStorageFailure(deleteError))
                {
                    Log.QuarantineFailed(_logger, digest.Value, deleteError.Message);
                }
            }

            return ValueTask.FromResult(status);
        }
    }

    private void TrimQuarantine()
    {
        var files = new DirectoryInfo(Layout.QuarantineDirectory).GetFiles();
        if (files.Length <= QuarantineKept)
        {
            return;
        }

        foreach (var old in files.OrderByDescending(f => f.LastWriteTimeUtc).Skip(QuarantineKept))
        {
            old.Delete();
        }
    }

    public async IAsyncEnumerable<StoredObject> EnumerateAsync(DateTimeOffset namedSince, string? fromShard, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!Directory.Exists(Layout.BlobsDirectory))
        {
            yield break;
        }

        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = 0 };
        // In shard order (a few directories, at most 256 per algorithm), so that a walk can be resumed.
        foreach (var algorithmDirectory in Directory.GetDirectories(Layout.BlobsDirectory).Order(StringComparer.Ordinal))
        {
            var algorithm = Path.GetFileName(algorithmDirectory);
            foreach (var shard in Directory.GetDirectories(algorithmDirectory, "*", options).Order(StringComparer.Ordinal))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (ContentShards.IsBefore(algorithm, Path.GetFileName(shard.AsSpan()), fromShard))
                {
                    continue;
                }

                // Read from the directory entry and one stat each: no FileInfo, path or name string per file, and a
                // digest string only for the objects to be named (the index rebuild and the scrub walk every file of
                // a cache that may hold millions).
                var files = new FileSystemEnumerable<StoredObject?>(shard, (ref entry) => Describe(algorithm, namedSince, ref entry), options)
                {
                    ShouldIncludePredicate = static (ref entry) => !entry.IsDirectory,
                };
                foreach (var stored in files)
                {
                    if (stored is { } found)
                    {
                        yield return found;
                    }
                }

                // One shard at a time: give the thread back between directories.
                await Task.Yield();
            }
        }
    }

    /// <summary>
    /// The object a directory entry holds, named when written since <paramref name="namedSince"/>; null for the files
    /// beside objects, foreign names, and files deleted since the directory was read.
    /// </summary>
    private static StoredObject? Describe(string algorithm, DateTimeOffset namedSince, ref FileSystemEntry entry)
    {
        var name = entry.FileName;
        if (Digest.Check(algorithm, name) != DigestParseStatus.Ok)
        {
            return null; // The .type and .origins files beside objects, and anything else that is not one.
        }

        // Eviction or a delete may remove the file between the directory read and this stat: it is gone, not an
        // error. The entry then reports what a missing file's times are documented to be (1601-01-01 UTC).
        var written = entry.LastWriteTimeUtc;
        if (written == MissingFileTime)
        {
            return null;
        }

        var digest = written >= namedSince && Digest.TryParse(string.Concat(algorithm, ":", name), out var named) ? named : default;
        return new StoredObject(digest, entry.Length, written);
    }

    public long? FreeSpace() => Layout.FreeSpace();

    public ValueTask<(StorageStatus Status, string? Error)> ProbeWritableAsync(CancellationToken cancellationToken)
    {
        var status = Layout.ProbeWritable(out var error);
        return ValueTask.FromResult((status, error));
    }

    /// <summary>Writes a small file atomically: to <c>tmp/</c>, flushed, then renamed over <paramref name="path"/>.</summary>
    internal async ValueTask<StorageStatus> WriteAtomicallyAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var temp = Layout.NewTempPath();
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
            {
                await RandomAccess.WriteAsync(handle, content, 0, cancellationToken).ConfigureAwait(false);
                if (Durability.Flush(handle) is not StorageStatus.Ok and var flushed)
                {
                    TryDelete(temp);
                    Log.WriteFailed(_logger, path, flushed, "fsync failed");
                    return flushed;
                }
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Move(temp, path, overwrite: true);
            return StorageStatus.Ok;
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            TryDelete(temp);
            var status = StorageErrors.Classify(ex);
            Log.WriteFailed(_logger, path, status, ex.Message);
            return status == StorageStatus.NotFound ? StorageStatus.IoError : status;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            // tmp/ is emptied at the next start.
        }
    }

    private sealed class FileContentReader(SafeFileHandle handle, long length) : IContentReader
    {
        public long Length { get; } = length;

        public ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
            RandomAccess.ReadAsync(handle, buffer, offset, cancellationToken);

        public void Dispose() => handle.Dispose();
    }

    private sealed class FileContentWriter : IContentWriter
    {
        /// <summary>How much a write-behind writer hands to the disk at a time; about twice this is in memory at once.</summary>
        private const long WriteBehindWindow = 8L * 1024 * 1024;

        private readonly FileContentStore _store;
        private readonly long? _expectedSize;
        private readonly string _tempPath;
        private readonly SafeFileHandle _handle;
        private readonly IncrementalHash _hash;
        private readonly bool _writeBehind;
        private long _written;
        private long _writebackStarted;
        private long _writebackDone;
        private StorageStatus _writebackFailure = StorageStatus.Ok;
        private bool _published;

        public FileContentWriter(FileContentStore store, Digest digest, long? expectedSize, string tempPath, SafeFileHandle handle, bool writeBehind)
        {
            _store = store;
            Digest = digest;
            _expectedSize = expectedSize;
            _tempPath = tempPath;
            _handle = handle;
            _hash = digest.CreateHash();
            _writeBehind = writeBehind;
        }

        public Digest Digest { get; }

        public long Written => Volatile.Read(ref _written);

        public async ValueTask<StorageStatus> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            var offset = Written;
            try
            {
                await RandomAccess.WriteAsync(_handle, data, offset, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
            {
                var status = StorageErrors.Classify(ex);
                Log.WriteFailed(_store._logger, Digest.Value, status, ex.Message);
                return status;
            }

            _hash.AppendData(data.Span);
            Volatile.Write(ref _written, offset + data.Length);
            var end = offset + data.Length;

            // The last write hands the rest to the disk too: the commit's flush then waits for little.
            return _writeBehind && (end - _writebackStarted >= WriteBehindWindow || end == _expectedSize) ? WriteBehind(end) : StorageStatus.Ok;
        }

        /// <summary>
        /// Starts the disk write of the window just filled, then waits for the one before it (written meanwhile) and
        /// drops it from memory. The flush before the commit is still what makes the blob durable; a write error
        /// seen here fails this write, so a blob the disk did not take is never published.
        /// </summary>
        private StorageStatus WriteBehind(long written)
        {
            var status = Durability.StartWriteback(_handle, _writebackStarted, written - _writebackStarted);
            if (status == StorageStatus.Ok && _writebackStarted > _writebackDone)
            {
                status = Durability.FinishWriteback(_handle, _writebackDone, _writebackStarted - _writebackDone);
                _writebackDone = _writebackStarted;
            }

            _writebackStarted = written;
            if (status != StorageStatus.Ok)
            {
                // Kept: the kernel has told this error once, and the flush before a commit would not tell it again.
                _writebackFailure = status;
                Log.WriteFailed(_store._logger, Digest.Value, status, "write-behind failed");
            }

            return status;
        }

        public int GetCurrentHash(Span<byte> destination) => _hash.GetCurrentHash(destination);

        public ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
            RandomAccess.ReadAsync(_handle, buffer, offset, cancellationToken);

        public async ValueTask<StorageStatus> CommitAsync(string? mediaType, IReadOnlyCollection<string>? privateOrigins, CancellationToken cancellationToken)
        {
            if (_writebackFailure != StorageStatus.Ok)
            {
                return _writebackFailure;
            }

            Span<byte> hash = stackalloc byte[64];
            var length = _hash.GetHashAndReset(hash);
            if (!Digest.MatchesHash(hash[..length]) || (_expectedSize is { } expected && expected != Written))
            {
                return StorageStatus.Mismatch;
            }

            var path = _store.Layout.BlobPath(Digest);
            try
            {
                if (Durability.Flush(_handle) is not StorageStatus.Ok and var flushed)
                {
                    Log.WriteFailed(_store._logger, Digest.Value, flushed, "fsync failed");
                    return flushed;
                }

                if (mediaType is not null)
                {
                    // The type first: a manifest file never exists without it.
                    var typeStatus = await _store.WriteAtomicallyAsync(path + TypeSuffix, Encoding.UTF8.GetBytes(mediaType), cancellationToken).ConfigureAwait(false);
                    if (typeStatus != StorageStatus.Ok)
                    {
                        return typeStatus;
                    }
                }

                if (File.Exists(path))
                {
                    return StorageStatus.AlreadyExists;
                }

                if (privateOrigins is { Count: > 0 })
                {
                    // The origins before the bytes: content never exists looking public when it is not.
                    var originsStatus = await _store.SetOriginsAsync(Digest, privateOrigins, cancellationToken).ConfigureAwait(false);
                    if (originsStatus != StorageStatus.Ok)
                    {
                        return originsStatus;
                    }
                }

                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.Move(_tempPath, path, overwrite: true);
                _published = true;
                return StorageStatus.Ok;
            }
            catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
            {
                var status = StorageErrors.Classify(ex);
                Log.WriteFailed(_store._logger, Digest.Value, status, ex.Message);
                return status == StorageStatus.NotFound ? StorageStatus.IoError : status;
            }
        }

        public ValueTask AbortAsync()
        {
            if (!_published)
            {
                TryDelete(_tempPath);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _hash.Dispose();
            _handle.Dispose();
            return AbortAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2101, LogLevel.Warning, "Cache write of {What} failed ({Status}): {Reason}")]
        public static partial void WriteFailed(ILogger logger, string what, StorageStatus status, string reason);

        [LoggerMessage(2102, LogLevel.Error, "Damaged object {Digest} could neither be moved aside nor deleted: {Reason}")]
        public static partial void QuarantineFailed(ILogger logger, string digest, string reason);
    }
}
