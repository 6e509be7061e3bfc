using BenchmarkDotNet.Attributes;
using MirrorProxy.Oci;
using MirrorProxy.Protocol;

namespace MirrorProxy.Benchmarks.Oci;

/// <summary>Per-request parsing on the hot path: the /v2/ path, the digest, a Range header.</summary>
[MemoryDiagnoser]
public class ParsingBenchmarks
{
    private const string BlobPath = "/docker.io/library/nginx/blobs/sha256:5d9e5b10f0d2ab8dcbe8b0b2d2a2e8c6f8a1f1f6b0b0d7f3c4a1e2b3c4d5e6f7";
    private const string DigestText = "sha256:5d9e5b10f0d2ab8dcbe8b0b2d2a2e8c6f8a1f1f6b0b0d7f3c4a1e2b3c4d5e6f7";

    [Benchmark]
    public int ParsePath() => RegistryPath.Parse(BlobPath).Name.Length;

    [Benchmark]
    public bool ParseDigest() => Digest.TryParse(DigestText, out _);

    [Benchmark]
    public bool ValidateName() => OciNames.IsValidRepository("docker.io/library/nginx");

    [Benchmark]
    public long ParseRange() => ByteRange.TryParse("bytes=1048576-", 52_428_800, out var range) == RangeParseResult.Satisfiable ? range.Length : 0;
}
