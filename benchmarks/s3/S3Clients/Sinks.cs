using System.Security.Cryptography;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>Drops what it is given: a GET streamed to nothing.</summary>
internal sealed class DiscardSink : IBodySink
{
    public Memory<byte> Buffer { get; } = new byte[64 * 1024];

    public void Consume(ReadOnlySpan<byte> data)
    {
    }
}

/// <summary>Hashes what it is given, to check that a GET returned the bytes that were PUT.</summary>
internal sealed class HashSink : IBodySink, IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public Memory<byte> Buffer { get; } = new byte[64 * 1024];

    public void Consume(ReadOnlySpan<byte> data) => _hash.AppendData(data);

    public string HexAndReset() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    public void Dispose() => _hash.Dispose();
}
