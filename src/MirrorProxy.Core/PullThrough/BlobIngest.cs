using System.Buffers;
using Microsoft.Win32.SafeHandles;
using MirrorProxy.Oci;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

/// <summary>How the start of an ingest went: the upstream's answer to the blob request.</summary>
internal readonly record struct IngestStart(UpstreamOutcome Outcome, long? Length, TimeSpan? RetryAfter, string? Detail)
{
    /// <summary>The blob was published between the caller's cache check and the start: serve it from the cache.</summary>
    public bool AlreadyCached { get; init; }
}

internal enum IngestState
{
    Running,
    Completed,
    Failed,
}

/// <summary>
/// One upstream download of one blob into a temporary file, which any number of clients read while it grows.
/// The download does not depend on any client: it finishes (and is cached) when every client has gone.
/// Readers are never handed the final byte before the digest and size verify, so a corrupt or truncated
/// upstream body never reaches a client as a complete response.
/// </summary>
internal sealed class BlobIngest
{
    private readonly TaskCompletionSource<IngestStart> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SafeFileHandle? _handle;
    private long _written;
    private int _state;
    private int _references = 1; // the writer's

    public BlobIngest(Digest digest, string tempPath)
    {
        Digest = digest;
        TempPath = tempPath;
    }

    public Digest Digest { get; }

    public string TempPath { get; }

    /// <summary>Completes when the upstream has answered (headers), successfully or not.</summary>
    public Task<IngestStart> Started => _started.Task;

    /// <summary>Total length announced by the upstream, when it announced one.</summary>
    public long? Length { get; private set; }

    public IngestState State => (IngestState)Volatile.Read(ref _state);

    public long Written => Volatile.Read(ref _written);

    /// <summary>The file being written, for readers holding a reference.</summary>
    public SafeFileHandle Handle => _handle ?? throw new InvalidOperationException("The ingest has no file.");

    /// <summary>Takes a reference that keeps the file handle open; false once the ingest is over and its file closed.</summary>
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
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _handle?.Dispose();
        }
    }

    /// <summary>
    /// Waits until bytes beyond <paramref name="position"/> may be read, and returns the exclusive limit that may be
    /// read now; -1 when the ingest failed. Returns <paramref name="position"/> itself only at the end of a complete blob.
    /// </summary>
    public async ValueTask<long> WaitForDataAsync(long position, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Take the signal before reading the state so that a write between the two is never missed.
            var signal = Volatile.Read(ref _progress).Task;
            var state = State;
            if (state == IngestState.Failed)
            {
                return -1;
            }

            var limit = ReadableLimit(state);
            if (limit > position || state == IngestState.Completed)
            {
                return limit;
            }

            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private long ReadableLimit(IngestState state)
    {
        var written = Written;
        if (state == IngestState.Completed)
        {
            return written;
        }

        // Hold back the last byte until verification.
        return Length is { } length ? Math.Min(written, length - 1) : Math.Max(written - 1, 0);
    }

    internal void SetStarted(IngestStart start)
    {
        Length = start.Outcome == UpstreamOutcome.Success ? start.Length : null;
        _started.TrySetResult(start);
    }

    internal void OpenFile()
    {
        _handle = File.OpenHandle(TempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous);
    }

    /// <summary>Copies the upstream body into the file, hashing as it goes. Returns null on success, or why it failed.</summary>
    internal async Task<string?> CopyAsync(Stream body, TimeSpan idleTimeout, TimeProvider time, Action<long> onBytes, CancellationToken cancellationToken)
    {
        using var hash = Digest.CreateHash();
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        using var idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        try
        {
            while (true)
            {
                idle.CancelAfter(idleTimeout);
                int read;
                try
                {
                    read = await body.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return $"no data from upstream for {idleTimeout.TotalSeconds:0.###} s";
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException)
                {
                    return $"upstream body failed: {ex.Message}";
                }

                if (read == 0)
                {
                    break;
                }

                var offset = Written;
                if (Length is { } length && offset + read > length)
                {
                    return $"upstream sent more than the announced {length} bytes";
                }

                hash.AppendData(buffer, 0, read);
                await RandomAccess.WriteAsync(Handle, buffer.AsMemory(0, read), offset, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _written, offset + read);
                onBytes(read);
                Pulse();
            }

            if (Length is { } expected && Written != expected)
            {
                return $"upstream body ended after {Written} of {expected} bytes";
            }

            Span<byte> digest = stackalloc byte[64];
            var size = hash.GetHashAndReset(digest);
            if (!Digest.MatchesHash(digest[..size]))
            {
                return "digest mismatch: the upstream content does not hash to the requested digest";
            }

            RandomAccess.FlushToDisk(Handle);
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal void Complete()
    {
        Volatile.Write(ref _state, (int)IngestState.Completed);
        Pulse();
    }

    internal void Fail()
    {
        Volatile.Write(ref _state, (int)IngestState.Failed);
        Pulse();
    }

    private void Pulse()
    {
        var previous = Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        previous.TrySetResult();
    }
}
