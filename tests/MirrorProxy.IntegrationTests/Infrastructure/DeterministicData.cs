using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Fast, seekable, deterministic pseudo-random (incompressible) bytes: word i of a stream is splitmix64(key + (i+1)·φ),
/// with the key derived from SHA-256 of the seed string. Same seed → same bytes on every machine.
/// </summary>
internal static class DeterministicData
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    public static ulong KeyFor(string seed) => BinaryPrimitives.ReadUInt64LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(seed)));

    public static byte[] Bytes(string seed, int length)
    {
        var bytes = new byte[length];
        Fill(KeyFor(seed), 0, bytes);
        return bytes;
    }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/> of the stream identified by <paramref name="key"/>.</summary>
    public static void Fill(ulong key, long offset, Span<byte> destination)
    {
        var wordIndex = (ulong)(offset / 8);
        var skip = (int)(offset % 8);
        Span<byte> word = stackalloc byte[8];
        if (skip != 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, Mix(key, wordIndex++));
            var take = Math.Min(8 - skip, destination.Length);
            word.Slice(skip, take).CopyTo(destination);
            destination = destination[take..];
        }

        while (destination.Length >= 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination, Mix(key, wordIndex++));
            destination = destination[8..];
        }

        if (destination.Length > 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, Mix(key, wordIndex));
            word[..destination.Length].CopyTo(destination);
        }
    }

    private static ulong Mix(ulong key, ulong index)
    {
        var z = key + ((index + 1) * Golden);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>Read-only, seekable stream over <see cref="DeterministicData"/> (no backing buffer, so it can be arbitrarily large).</summary>
internal sealed class DeterministicDataStream : Stream
{
    private readonly ulong _key;
    private readonly long _length;
    private long _position;

    public DeterministicDataStream(string seed, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _key = DeterministicData.KeyFor(seed);
        _length = length;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _length;

    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var count = (int)Math.Min(buffer.Length, Math.Max(0, _length - _position));
        DeterministicData.Fill(_key, _position, buffer[..count]);
        _position += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => Task.FromResult(Read(buffer, offset, count));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        => ValueTask.FromResult(Read(buffer.Span));

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => _length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Write-only pass-through that hashes everything written (used to compute a layer's diff_id while gzipping).</summary>
internal sealed class HashingWriteStream(Stream inner, IncrementalHash hash) : Stream
{
    public long BytesWritten { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => BytesWritten;

    public override long Position
    {
        get => BytesWritten;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        hash.AppendData(buffer);
        BytesWritten += buffer.Length;
        inner.Write(buffer);
    }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
