using MirrorProxy.Common;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>
/// A forward-only body over bytes already in memory: not seekable and without a Length, like the pipe a download
/// feeds, so that a library that needs to buffer or re-read a body has to do it itself (and it shows in its allocations).
/// </summary>
internal sealed class SourceStream(ReadOnlyMemory<byte> content) : ReadOnlyStream
{
    private int _position;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var count = Math.Min(buffer.Length, content.Length - _position);
        content.Span.Slice(_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : ValueTask.FromResult(Read(buffer.Span));
}
