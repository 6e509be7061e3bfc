namespace MirrorProxy.Common;

/// <summary>
/// A read-only view of a stream that fails with <see cref="InvalidDataException"/> once more than a limit has
/// been read, so that a parser fed by an upstream never buffers more than the mirror is willing to hold.
/// </summary>
internal sealed class LimitedStream(Stream inner, long limit) : ReadOnlyStream
{
    private long _read;

    public override long Position
    {
        get => _read;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

    private int Count(int read)
    {
        _read += read;
        return _read > limit ? throw new InvalidDataException($"more than {limit} bytes") : read;
    }
}
