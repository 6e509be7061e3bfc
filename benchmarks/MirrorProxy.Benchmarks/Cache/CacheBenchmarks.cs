using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;

namespace MirrorProxy.Benchmarks.Cache;

/// <summary>
/// Index lookups (FASTER, and the memory layer in front of it) over 10,000 cached blobs, and opening such a
/// cache: recovering the index from its checkpoint, and rebuilding it from the files.
/// </summary>
[MemoryDiagnoser]
public class CacheBenchmarks
{
    private const int Blobs = 10_000;
    private string _directory = "";
    private readonly HotContentCache _hot = new(1 << 20, 64 << 10);
    private MirrorCache _cache = null!;
    private Digest[] _digests = [];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "mirrorproxy-bench-" + Guid.NewGuid().ToString("N"));
        var buffer = new byte[2048];
        var random = new Random(3);
        _digests = new Digest[Blobs];
        for (var i = 0; i < Blobs; i++)
        {
            random.NextBytes(buffer);
            var digest = Digest.FromSha256Hash(SHA256.HashData(buffer));
            var path = Path.Combine(_directory, "blobs", "sha256", digest.Value[7..9], digest.Value[7..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, buffer);
            _digests[i] = digest;
        }

        _hot.Add(_digests[0].Value, buffer, null);
        _cache = Open(memory: 0);
        _cache.CheckpointAsync(CancellationToken.None).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private MirrorCache Open(long memory) =>
        MirrorCache.Open(new CacheOptions { Path = _directory, MemorySize = new ByteSize(memory) }, TimeProvider.System, NullLogger.Instance);

    [Benchmark]
    public async Task<long> IndexLookup()
    {
        var digest = _digests[_next++ % Blobs];
        return (await _cache.TryGetContentAsync(digest))?.Size ?? 0;
    }

    [Benchmark]
    public long MemoryLookup() => _hot.TryGet(_digests[0].Value, out var entry) ? entry.Content.Length : 0;

    [Benchmark]
    public long OpenWithCheckpoint()
    {
        _cache.Dispose();
        _cache = Open(memory: 0);
        return _cache.ObjectCount;
    }

    [Benchmark]
    public long OpenAndRebuildIndex()
    {
        _cache.Dispose();
        Directory.Delete(Path.Combine(_directory, "index"), recursive: true);
        _cache = Open(memory: 0);
        return _cache.ObjectCount;
    }
}
