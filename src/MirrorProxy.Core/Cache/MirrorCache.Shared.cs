using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>Reading content this node lacks from the store replicas share, and keeping a copy on the way.</summary>
internal sealed partial class MirrorCache
{
    private IContentStore StoreOf(in ContentEntry entry) => entry.Remote && _shared is not null ? _shared.Store : _store;

    /// <summary>The shared store's answer for an object this node does not hold: an entry marked remote, never indexed.</summary>
    private async ValueTask<ContentEntry?> LookupSharedAsync(Digest digest, CancellationToken cancellationToken)
    {
        var stat = await _shared!.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
        return stat.Exists ? new ContentEntry(stat.Size, ContentKind.Unknown, null, _time.GetUtcNow(), Remote: true) : null;
    }

    /// <summary>
    /// Opens an object in the shared store. A read that goes from the first byte to the last fills the local cache
    /// on the way (verified, then published and indexed); a read that jumps, stops early or fails leaves nothing.
    /// </summary>
    private async ValueTask<(CachedContentStatus Status, IContentReader? Reader)> OpenSharedAsync(Digest digest, long size, CancellationToken cancellationToken)
    {
        var shared = _shared!;
        var (status, reader) = await shared.Store.OpenReadAsync(digest, size, cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case StorageStatus.Ok:
                break;
            case StorageStatus.NotFound:
                Hot.Remove(digest.Value);
                return (CachedContentStatus.Missing, null);
            case StorageStatus.Mismatch:
                // Not the size it was announced with: the shared copy is damaged (or it is another object than asked).
                await shared.Store.QuarantineAsync(digest, QuarantineReason.Size, cancellationToken).ConfigureAwait(false);
                _metrics.Quarantined(QuarantineReasons.Size);
                return (CachedContentStatus.Damaged, null);
            default:
                Log.ReadFailed(_logger, digest.Value, status);
                return (CachedContentStatus.Unreadable, null);
        }

        if (size > shared.MaxFillSize)
        {
            return (CachedContentStatus.Ok, reader);
        }

        var (writeStatus, writer) = await _store.BeginWriteAsync(digest, size, cancellationToken).ConfigureAwait(false);
        return writer is null
            ? LogAndServe(writeStatus, reader!)
            : (CachedContentStatus.Ok, new FillingReader(this, reader!, writer));

        (CachedContentStatus, IContentReader?) LogAndServe(StorageStatus failed, IContentReader served)
        {
            _health.WriteFailed(failed, "copy of " + digest.Value);
            return (CachedContentStatus.Ok, served);
        }
    }

    /// <summary>
    /// Publishes a copy read whole from the shared store, with the attributes the shared store keeps for it. A copy
    /// whose bytes do not hash to its digest was damaged in the shared store: it is deleted there.
    /// </summary>
    private async ValueTask CommitFillAsync(IContentWriter writer, CancellationToken cancellationToken)
    {
        var shared = _shared!;
        var attributes = await shared.Store.GetAttributesAsync(writer.Digest, cancellationToken).ConfigureAwait(false);
        var status = await writer.CommitAsync(attributes.MediaType, attributes.PrivateOrigins, cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case StorageStatus.Ok:
                _health.WriteSucceeded();
                var entry = new ContentEntry(writer.Written, attributes.MediaType is null ? ContentKind.Blob : ContentKind.Manifest, attributes.MediaType, _time.GetUtcNow(),
                    OriginSet.FromNames(attributes.PrivateOrigins));
                _index.PutContent(writer.Digest, entry);
                Hot.Refresh(writer.Digest.Value, entry);
                Counted(writer.Written, 1);
                ContentAdded?.Invoke();
                break;
            case StorageStatus.AlreadyExists:
                break;
            case StorageStatus.Mismatch:
                await shared.Store.QuarantineAsync(writer.Digest, QuarantineReason.Digest, cancellationToken).ConfigureAwait(false);
                _metrics.Quarantined(QuarantineReasons.Digest);
                break;
            default:
                _health.WriteFailed(status, "copy of " + writer.Digest.Value);
                break;
        }
    }

    /// <summary>
    /// A reader of the shared copy that writes what it reads into a local writer while the reads run from the
    /// start without gaps, and commits it when the last byte has been read.
    /// </summary>
    private sealed class FillingReader(MirrorCache cache, IContentReader source, IContentWriter writer) : IContentReader
    {
        private IContentWriter? _writer = writer;

        public long Length => source.Length;

        public async ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            var read = await source.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            if (_writer is not { } filling)
            {
                return read;
            }

            if (offset != filling.Written || await filling.WriteAsync(buffer[..read], cancellationToken).ConfigureAwait(false) != StorageStatus.Ok)
            {
                // A jump (a range), or a local disk that cannot take it: serve on, keep nothing.
                Drop();
                return read;
            }

            if (filling.Written == Length)
            {
                _writer = null;
                try
                {
                    await cache.CommitFillAsync(filling, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    await filling.DisposeAsync().ConfigureAwait(false);
                }
            }

            return read;
        }

        private void Drop()
        {
            if (Interlocked.Exchange(ref _writer, null) is { } dropped)
            {
                // The local writer discards its temporary file synchronously.
                var disposing = dropped.DisposeAsync();
                if (!disposing.IsCompletedSuccessfully)
                {
                    _ = disposing.AsTask();
                }
            }
        }

        public void Dispose()
        {
            Drop();
            source.Dispose();
        }
    }
}
