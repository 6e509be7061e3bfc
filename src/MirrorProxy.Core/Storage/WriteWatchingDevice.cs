using FASTER.core;

namespace MirrorProxy.Storage;

/// <summary>
/// The index log's device, passed through, with one thing added: it notices when a write fails. FASTER does not
/// retry a page flush that failed (a full disk, an I/O error); the log's flushed address stops there for good, and
/// the next write that needs that page's memory waits for it forever. <see cref="CacheIndex"/> stops writing at
/// the first failure instead, so that no request thread is caught in that wait.
/// </summary>
internal sealed class WriteWatchingDevice : StorageDeviceBase
{
    private readonly IDevice _inner;
    private readonly Action<uint> _onWriteFailed;

    /// <param name="onWriteFailed">Called with the error of every write that fails.</param>
    public WriteWatchingDevice(IDevice inner, Action<uint> onWriteFailed)
        : base(inner.FileName, inner.SectorSize, inner.Capacity)
    {
        _inner = inner;
        _onWriteFailed = onWriteFailed;
    }

    public override void Initialize(long segmentSize, LightEpoch? epoch = null, bool omitSegmentIdFromFilename = false)
    {
        base.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);
        _inner.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);
    }

    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context) =>
        // One closure per page flush (64 KiB of records): nothing on the per-record path.
        _inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, (errorCode, written, state) =>
        {
            if (errorCode != 0)
            {
                _onWriteFailed(errorCode);
            }

            callback(errorCode, written, state);
        }, context);

    public override void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context) =>
        _inner.ReadAsync(segmentId, sourceAddress, destinationAddress, readLength, callback, context);

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result) => _inner.RemoveSegmentAsync(segment, callback, result);

    public override void RemoveSegment(int segment) => _inner.RemoveSegment(segment);

    public override long GetFileSize(int segment) => _inner.GetFileSize(segment);

    public override bool TryComplete() => _inner.TryComplete();

    public override bool Throttle() => _inner.Throttle();

    public override void Reset() => _inner.Reset();

    public override void Dispose() => _inner.Dispose();
}
