using System.IO.Pipelines;
using Microsoft.Win32.SafeHandles;

namespace MirrorProxy.Protocol;

/// <summary>Copies file bytes to the response through the <see cref="PipeWriter"/> in 64 KiB pooled chunks.</summary>
internal static class ContentSender
{
    public const int ChunkSize = 64 * 1024;

    /// <summary>
    /// Sends <paramref name="count"/> bytes from <paramref name="offset"/>. Returns the bytes sent; fewer than asked
    /// when the client went away or the file was shorter than expected.
    /// </summary>
    public static async ValueTask<long> CopyAsync(SafeFileHandle file, long offset, long count, PipeWriter writer, CancellationToken cancellationToken)
    {
        var sent = 0L;
        while (sent < count)
        {
            var memory = writer.GetMemory(ChunkSize);
            var want = (int)Math.Min(memory.Length, count - sent);
            var read = await RandomAccess.ReadAsync(file, memory[..want], offset + sent, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return sent;
            }

            writer.Advance(read);
            sent += read;
            var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (flush.IsCompleted || flush.IsCanceled)
            {
                return sent;
            }
        }

        return sent;
    }
}
