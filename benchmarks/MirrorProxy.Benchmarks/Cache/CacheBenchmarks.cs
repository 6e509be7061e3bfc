using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Benchmarks.Cache;

/// <summary>
/// Lookups over 10,000 cached blobs (the FASTER index, the memory layer in front of it, and the files when the
/// index does not know an object), and opening such a cache: recovering the index from a clean stop's checkpoint.
/// </summary>
[MemoryDiagnoser]
public class CacheBenchmarks
{
    private const int Blobs = 10_000;
    private readonly HotContentCache _hot = new(1 << 20, 64 << 10);
    private readonly MirrorMetrics _metrics = new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
    private string _directory = "";
    private MirrorCache _cache = null!;
    private Digest[] _digests = [];
    private int _next;

    [GlobalSetup]
    public async Task Setup()
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

        _hot.Add(_digests[0].Value, buffer, new ContentEntry(buffer.Length, ContentKind.Blob, null, DateTimeOffset.UtcNow));
        _cache = Open();
        foreach (var digest in _digests)
        {
            await _cache.LookupAsync(digest, CancellationToken.None);
        }

        await _cache.Index.CloseCleanlyAsync(CancellationToken.None);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private MirrorCache Open() =>
        FileCache.Open(new CacheOptions { Path = _directory, MemorySize = new ByteSize(0) }, _metrics, TimeProvider.System, NullLoggerFactory.Instance);

    [Benchmark]
    public async Task<long> IndexLookup()
    {
        var digest = _digests[_next++ % Blobs];
        return (await _cache.LookupAsync(digest, CancellationToken.None))?.Size ?? 0;
    }

    [Benchmark]
    public long MemoryLookup() => _hot.TryGet(_digests[0].Value, out var entry) ? entry.Content.Length : 0;

    [Benchmark]
    public async Task<bool> OpenAfterCleanStop()
    {
        await _cache.Index.CloseCleanlyAsync(CancellationToken.None);
        _cache.Dispose();
        _cache = Open();
        return _cache.IndexTrusted;
    }
}
