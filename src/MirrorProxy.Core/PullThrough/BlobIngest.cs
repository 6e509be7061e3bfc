using System.Buffers;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

/// <summary>How a download ended.</summary>
internal enum DownloadOutcome
{
    /// <summary>Still running.</summary>
    Running,
    /// <summary>Verified and stored.</summary>
    Stored,
    /// <summary>The upstream had no usable answer at the headers (see <see cref="IngestStart"/>).</summary>
    NoAnswer,
    /// <summary>No bytes for longer than the idle timeout.</summary>
    Stalled,
    /// <summary>The connection broke off mid-body.</summary>
    BrokenOff,
    /// <summary>Slower than the upstream's minimum throughput.</summary>
    TooSlow,
    /// <summary>More bytes than announced, or than the largest blob the cache keeps.</summary>
    TooLong,
    /// <summary>Fewer bytes than announced.</summary>
    TooShort,
    /// <summary>The bytes do not hash to the digest.</summary>
    DigestMismatch,
    /// <summary>The cache could not write (full, read-only, failing disk).</summary>
    StorageFailed,
    /// <summary>The mirror is stopping.</summary>
    Cancelled,
}

/// <summary>How the start of a download went: the upstream's answer to the blob request.</summary>
internal readonly record struct IngestStart(UpstreamOutcome Outcome, long? Length, TimeSpan? RetryAfter, string? Detail)
{
    /// <summary>The blob was stored between the caller's cache check and the start: serve it from the cache.</summary>
    public bool AlreadyCached { get; init; }

    /// <summary>The upstream can serve it but the cache will not keep it (too large, or the disk refuses): relay it instead.</summary>
    public bool NotKept { get; init; }
}

/// <summary>
/// One upstream download of one blob into the store, which any number of clients read while it grows. The
/// download does not depend on any client: it finishes (and is cached) when every client has gone. Readers are
/// never handed the final byte before the store has verified digest and size, so a corrupt or truncated upstream
/// body never reaches a client as a complete response.
/// </summary>
internal sealed class BlobIngest
{
    private readonly TaskCompletionSource<IngestStart> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IContentWriter? _writer;
    private int _outcome;
    private int _references = 1; // the download's own

    public BlobIngest(Digest digest) => Digest = digest;

    public Digest Digest { get; }

    /// <summary>Completes when the upstream has answered (headers), successfully or not.</summary>
    public Task<IngestStart> Started => _started.Task;

    /// <summary>Total length announced by the upstream, when it announced one.</summary>
    public long? Length { get; private set; }

    public DownloadOutcome Outcome => (DownloadOutcome)Volatile.Read(ref _outcome);

    public bool IsFailed => Outcome is not (DownloadOutcome.Running or DownloadOutcome.Stored);

    public long Written => _writer?.Written ?? 0;

    /// <summary>Takes a reference that keeps what was written readable; false once the download is over and closed.</summary>
    public bool TryAddReader()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current == 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    public void ReleaseReader()
    {
        if (Interlocked.Decrement(ref _references) == 0 && _writer is { } writer)
        {
            // The last reader is gone: close the file (an uncommitted one is deleted).
            _ = writer.DisposeAsync().AsTask();
        }
    }

    /// <summary>Reads what has been written so far (readers hold a reference).</summary>
    public ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        _writer!.ReadAsync(offset, buffer, cancellationToken);

    /// <summary>
    /// Waits until bytes beyond <paramref name="position"/> may be read, and returns the exclusive limit that may be
    /// read now; -1 when the download failed. Returns <paramref name="position"/> itself only at the end of a stored blob.
    /// </summary>
    public async ValueTask<long> WaitForDataAsync(long position, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Take the signal before reading the state so that a write between the two is never missed.
            var signal = Volatile.Read(ref _progress).Task;
            var outcome = Outcome;
            if (IsFailed)
            {
                return -1;
            }

            var limit = ReadableLimit(outcome);
            if (limit > position || outcome == DownloadOutcome.Stored)
            {
                return limit;
            }

            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private long ReadableLimit(DownloadOutcome outcome)
    {
        var written = Written;
        if (outcome == DownloadOutcome.Stored)
        {
            return written;
        }

        // Hold back the last byte until verification.
        return Length is { } length ? Math.Min(written, length - 1) : Math.Max(written - 1, 0);
    }

    internal void SetStarted(IngestStart start)
    {
        Length = start.Outcome == UpstreamOutcome.Success && !start.NotKept ? start.Length : null;
        _started.TrySetResult(start);
    }

    internal void Attach(IContentWriter writer) => _writer = writer;

    /// <summary>
    /// Copies the upstream body into the writer. Returns <see cref="DownloadOutcome.Running"/> when the whole body
    /// arrived (the commit decides the rest), or why it failed.
    /// </summary>
    internal async Task<DownloadOutcome> CopyAsync(Stream body, DownloadLimits limits, TimeProvider time, Action<long> onBytes, CancellationToken cancellationToken)
    {
        var writer = _writer!;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        using var idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        var windowStarted = time.GetTimestamp();
        var windowBytes = 0L;
        try
        {
            while (true)
            {
                idle.CancelAfter(limits.IdleTimeout);
                int read;
                try
                {
                    read = await body.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return DownloadOutcome.Stalled;
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException)
                {
                    return DownloadOutcome.BrokenOff;
                }

                if (read == 0)
                {
                    break;
                }

                var total = writer.Written + read;
                if ((Length is { } length && total > length) || total > limits.MaxSize)
                {
                    return DownloadOutcome.TooLong;
                }

                if (await writer.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false) != StorageStatus.Ok)
                {
                    return DownloadOutcome.StorageFailed;
                }

                onBytes(read);
                Pulse();

                windowBytes += read;
                if (limits.MinThroughput > 0 && time.GetElapsedTime(windowStarted) is var elapsed && elapsed >= limits.ThroughputWindow)
                {
                    if (windowBytes < limits.MinThroughput * elapsed.TotalSeconds)
                    {
                        return DownloadOutcome.TooSlow;
                    }

                    windowStarted = time.GetTimestamp();
                    windowBytes = 0;
                }
            }

            return Length is { } expected && writer.Written != expected ? DownloadOutcome.TooShort : DownloadOutcome.Running;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal void Finish(DownloadOutcome outcome)
    {
        Volatile.Write(ref _outcome, (int)outcome);
        Pulse();
    }

    private void Pulse()
    {
        var previous = Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        previous.TrySetResult();
    }
}

/// <summary>What a download may take: time without bytes, the slowest pace, and the most bytes.</summary>
internal readonly record struct DownloadLimits(TimeSpan IdleTimeout, long MinThroughput, TimeSpan ThroughputWindow, long MaxSize);
