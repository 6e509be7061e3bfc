using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using MirrorProxy.Oci;

namespace MirrorProxy.Benchmarks.Oci;

/// <summary>Verifying a blob while it streams (64 KiB appends) against one-shot SHA-256 of the same bytes.</summary>
[MemoryDiagnoser]
public class HashingBenchmarks
{
    private byte[] _data = [];
    private Digest _digest;

    [Params(64 * 1024, 4 * 1024 * 1024)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(1).NextBytes(_data);
        _digest = Digest.ComputeSha256(_data);
    }

    [Benchmark(Baseline = true)]
    public byte[] RawSha256() => SHA256.HashData(_data);

    [Benchmark]
    public bool StreamingVerify()
    {
        using var hash = _digest.CreateHash();
        for (var offset = 0; offset < _data.Length; offset += 64 * 1024)
        {
            hash.AppendData(_data, offset, Math.Min(64 * 1024, _data.Length - offset));
        }

        Span<byte> result = stackalloc byte[32];
        hash.GetHashAndReset(result);
        return _digest.MatchesHash(result);
    }
}
