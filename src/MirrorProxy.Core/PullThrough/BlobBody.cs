using System.Buffers;
using System.IO.Pipelines;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

/// <summary>How sending a body ended.</summary>
internal enum SendResult
{
    /// <summary>Every byte asked for was sent.</summary>
    Complete,
    /// <summary>The client went away.</summary>
    ClientGone,
    /// <summary>The source failed (a download that did not verify, a file cut short): the response must break, not end.</summary>
    SourceFailed,
}

/// <summary>Where the bytes of a blob answer come from: memory, a stored object, a download in progress, or an upstream relayed as it is.</summary>
internal abstract class BlobBody : IDisposable
{
    public const int ChunkSize = 64 * 1024;

    /// <summary>The total length, when known before sending.</summary>
    public abstract long? Length { get; }

    /// <summary>True when the bytes come from the cache (for the served-bytes metric).</summary>
    public abstract bool FromCache { get; }

    /// <summary>Whether a byte range of it can be sent (a relay sends the whole body, as RFC 9110 allows).</summary>
    public virtual bool SupportsRanges => Length is not null;

    /// <summary>Sends <paramref name="count"/> bytes from <paramref name="offset"/> (all to the end when the length is unknown).</summary>
    public abstract ValueTask<(SendResult Result, long Sent)> SendAsync(PipeWriter writer, long offset, long count, CancellationToken cancellationToken);

    public virtual void Dispose()
    {
    }

    protected static async ValueTask<bool> FlushAsync(PipeWriter writer, CancellationToken cancellationToken)
    {
        var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return !flush.IsCompleted && !flush.IsCanceled;
    }
}

/// <summary>Small content held in memory (already hashed when it was loaded).</summary>
internal sealed class MemoryBlobBody(byte[] content) : BlobBody
{
    public override long? Length => content.Length;

    public override bool FromCache => true;

    public override async ValueTask<(SendResult, long)> SendAsync(PipeWriter writer, long offset, long count, CancellationToken cancellationToken)
    {
        var flush = await writer.WriteAsync(content.AsMemory((int)offset, (int)count), cancellationToken).ConfigureAwait(false);
        return flush.IsCompleted || flush.IsCanceled ? (SendResult.ClientGone, count) : (SendResult.Complete, count);
    }
}

/// <summary>A stored object, read in 64 KiB chunks straight into the response pipe.</summary>
internal sealed class StoredBlobBody(IContentReader reader) : BlobBody
{
    public override long? Length => reader.Length;

    public override bool FromCache => true;

    public override async ValueTask<(SendResult, long)> SendAsync(PipeWriter writer, long offset, long count, CancellationToken cancellationToken)
    {
        var sent = 0L;
        while (sent < count)
        {
            var memory = writer.GetMemory(ChunkSize);
            var want = (int)Math.Min(memory.Length, count - sent);
            int read;
            try
            {
                read = await reader.ReadAsync(offset + sent, memory[..want], cancellationToken).ConfigureAwait(false);
            }
            catch (IOException)
            {
                return (SendResult.SourceFailed, sent);
            }

            if (read == 0)
            {
                // Shorter than it was when opened: never end such a response as if complete.
                return (SendResult.SourceFailed, sent);
            }

            writer.Advance(read);
            sent += read;
            if (!await FlushAsync(writer, cancellationToken).ConfigureAwait(false))
            {
                return (SendResult.ClientGone, sent);
            }
        }

        return (SendResult.Complete, sent);
    }

    public override void Dispose() => reader.Dispose();
}

/// <summary>A download in progress, followed as it grows; the last byte waits for the verification.</summary>
internal sealed class IngestBlobBody(BlobIngest ingest) : BlobBody
{
    public override long? Length => ingest.Length;

    public override bool FromCache => false;

    public override async ValueTask<(SendResult, long)> SendAsync(PipeWriter writer, long offset, long count, CancellationToken cancellationToken)
    {
        var position = offset;
        var end = count == long.MaxValue ? long.MaxValue : offset + count;
        while (position < end)
        {
            var limit = await ingest.WaitForDataAsync(position, cancellationToken).ConfigureAwait(false);
            if (limit < 0)
            {
                return (SendResult.SourceFailed, position - offset);
            }

            if (limit <= position)
            {
                break; // stored, at the end of a blob of unknown length
            }

            var stop = Math.Min(limit, end);
            while (position < stop)
            {
                var memory = writer.GetMemory(ChunkSize);
                var want = (int)Math.Min(memory.Length, stop - position);
                var read = await ingest.ReadAsync(position, memory[..want], cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return (SendResult.SourceFailed, position - offset);
                }

                writer.Advance(read);
                position += read;
                if (!await FlushAsync(writer, cancellationToken).ConfigureAwait(false))
                {
                    return (SendResult.ClientGone, position - offset);
                }
            }
        }

        return (SendResult.Complete, position - offset);
    }

    public override void Dispose() => ingest.ReleaseReader();
}

/// <summary>
/// An upstream answer relayed without being kept (too large for the cache, or a disk that refuses writes). It is
/// hashed as it passes, and the last chunk is held back until the digest verifies: a corrupt relay breaks off.
/// </summary>
internal sealed class RelayBlobBody(UpstreamResponse response, Stream body, Digest digest, TimeSpan idleTimeout, TimeProvider time) : BlobBody
{
    public override long? Length => response.Message!.Content.Headers.ContentLength;

    public override bool FromCache => false;

    public override bool SupportsRanges => false;

    public override async ValueTask<(SendResult, long)> SendAsync(PipeWriter writer, long offset, long count, CancellationToken cancellationToken)
    {
        using var hash = digest.CreateHash();
        var held = ArrayPool<byte>.Shared.Rent(ChunkSize);
        var next = ArrayPool<byte>.Shared.Rent(ChunkSize);
        using var idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        var heldCount = 0;
        var sent = 0L;
        try
        {
            while (true)
            {
                idle.CancelAfter(idleTimeout);
                int read;
                try
                {
                    read = await body.ReadAsync(next.AsMemory(0, ChunkSize), linked.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    return (SendResult.SourceFailed, sent);
                }

                if (read == 0)
                {
                    break;
                }

                hash.AppendData(next, 0, read);
                if (heldCount > 0)
                {
                    var flush = await writer.WriteAsync(held.AsMemory(0, heldCount), cancellationToken).ConfigureAwait(false);
                    sent += heldCount;
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        return (SendResult.ClientGone, sent);
                    }
                }

                (held, next) = (next, held);
                heldCount = read;
            }

            Span<byte> computed = stackalloc byte[64];
            var length = hash.GetHashAndReset(computed);
            if (!digest.MatchesHash(computed[..length]) || (Length is { } expected && expected != sent + heldCount))
            {
                return (SendResult.SourceFailed, sent);
            }

            if (heldCount > 0)
            {
                var flush = await writer.WriteAsync(held.AsMemory(0, heldCount), cancellationToken).ConfigureAwait(false);
                sent += heldCount;
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    return (SendResult.ClientGone, sent);
                }
            }

            return (SendResult.Complete, sent);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(held);
            ArrayPool<byte>.Shared.Return(next);
        }
    }

    public override void Dispose()
    {
        body.Dispose();
        response.Dispose();
    }
}
