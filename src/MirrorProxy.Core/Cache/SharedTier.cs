using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using MirrorProxy.Common;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// The store replicas share (an S3 bucket), as the cache uses it. Content committed on this node is copied there
/// in the background, one copy per object at a time; content this node lacks is read from there, and the read
/// fills the local cache as it goes (when the object fits the local budget), so that the next read is local.
/// The local cache is the one that serves: a shared store that is down costs new content, never what this node
/// holds.
/// </summary>
internal sealed partial class SharedTier
{
    private const int CopyBuffer = 256 * 1024;

    private readonly ConcurrentDictionary<Digest, Task<StorageStatus>> _uploads = new();
    private readonly SemaphoreSlim _uploadSlots;
    private readonly BackgroundWork _background;
    private readonly Func<bool> _reachable;
    private readonly ILogger _logger;

    public SharedTier(IContentStore store, IMetadataStore metadata, Func<bool> reachable, long maxFillSize, int concurrentUploads, BackgroundWork background, ILogger<SharedTier> logger)
    {
        Store = store;
        Metadata = metadata;
        _reachable = reachable;
        MaxFillSize = maxFillSize;
        _uploadSlots = new SemaphoreSlim(concurrentUploads, concurrentUploads);
        _background = background;
        _logger = logger;
    }

    public IContentStore Store { get; }

    /// <summary>The shared documents (tags, pin sets, listings, bundle state).</summary>
    public IMetadataStore Metadata { get; }

    /// <summary>False while the shared store is held down (it is not dialed then).</summary>
    public bool IsReachable => _reachable();

    /// <summary>Largest object a read from the shared store copies into the local cache.</summary>
    public long MaxFillSize { get; }

    /// <summary>Copies in progress.</summary>
    public int UploadsInProgress => _uploads.Count;

    /// <summary>
    /// Copies an object this node committed to the shared store, in the background (at most a few at once). The
    /// same object is copied once however often it is asked for while a copy runs.
    /// </summary>
    public Task<StorageStatus> Share(IContentStore local, Digest digest, long size, ContentAttributes attributes)
    {
        var started = new TaskCompletionSource<StorageStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        var existing = _uploads.GetOrAdd(digest, started.Task);
        if (existing != started.Task)
        {
            return existing;
        }

        _background.Run("share " + digest.Value, static async (state, stopping) =>
        {
            var (tier, local, digest, size, attributes, done) = state;
            var status = StorageStatus.Unavailable;
            try
            {
                status = await tier.UploadAsync(local, digest, size, attributes, stopping).ConfigureAwait(false);
            }
            finally
            {
                tier._uploads.TryRemove(digest, out _);
                done.TrySetResult(status);
            }
        }, (this, local, digest, size, attributes, started));
        return started.Task;
    }

    /// <summary>The copy of <paramref name="digest"/> in progress; a completed task when there is none.</summary>
    public Task<StorageStatus> UploadOf(Digest digest) => _uploads.TryGetValue(digest, out var upload) ? upload : Task.FromResult(StorageStatus.Ok);

    private async Task<StorageStatus> UploadAsync(IContentStore local, Digest digest, long size, ContentAttributes attributes, CancellationToken cancellationToken)
    {
        await _uploadSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another replica may have stored it meanwhile: a HEAD costs less than a body the store refuses.
            var stat = await Store.StatAsync(digest, cancellationToken).ConfigureAwait(false);
            if (stat.Exists)
            {
                return StorageStatus.AlreadyExists;
            }

            if (stat.Status == StorageStatus.Unavailable)
            {
                Log.UploadFailed(_logger, digest.Value, StorageStatus.Unavailable);
                return StorageStatus.Unavailable;
            }

            var (openStatus, reader) = await local.OpenReadAsync(digest, size, cancellationToken).ConfigureAwait(false);
            if (reader is null)
            {
                return openStatus;
            }

            using (reader)
            {
                var (beginStatus, writer) = await Store.BeginCopyAsync(digest, size, attributes, cancellationToken).ConfigureAwait(false);
                if (writer is null)
                {
                    return beginStatus;
                }

                await using (writer.ConfigureAwait(false))
                {
                    var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(CopyBuffer);
                    try
                    {
                        long offset = 0;
                        while (offset < size)
                        {
                            var read = await reader.ReadAsync(offset, buffer.AsMemory(0, (int)Math.Min(buffer.Length, size - offset)), cancellationToken).ConfigureAwait(false);
                            if (read == 0)
                            {
                                return StorageStatus.Mismatch;
                            }

                            var written = await writer.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                            if (written != StorageStatus.Ok)
                            {
                                Log.UploadFailed(_logger, digest.Value, written);
                                return written;
                            }

                            offset += read;
                        }
                    }
                    catch (IOException ex)
                    {
                        Log.UploadFailed(_logger, digest.Value, StorageErrors.Classify(ex));
                        return StorageStatus.IoError;
                    }
                    finally
                    {
                        System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                    }

                    var status = await writer.CommitAsync(attributes.MediaType, attributes.PrivateOrigins, cancellationToken).ConfigureAwait(false);
                    if (status is StorageStatus.Ok or StorageStatus.AlreadyExists)
                    {
                        Log.Uploaded(_logger, digest.Value, size);
                    }
                    else
                    {
                        Log.UploadFailed(_logger, digest.Value, status);
                    }

                    return status;
                }
            }
        }
        finally
        {
            _uploadSlots.Release();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2401, LogLevel.Debug, "Copied {Digest} ({Size} bytes) to the shared store")]
        public static partial void Uploaded(ILogger logger, string digest, long size);

        [LoggerMessage(2402, LogLevel.Warning, "Copying {Digest} to the shared store failed ({Status}): other replicas fetch it themselves; this node keeps serving it")]
        public static partial void UploadFailed(ILogger logger, string digest, StorageStatus status);
    }
}
