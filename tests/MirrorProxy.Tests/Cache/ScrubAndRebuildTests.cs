using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cache;

public sealed class ScrubAndRebuildTests : IDisposable
{
    private readonly TestCache _cache = new(memory: 0);

    [Fact]
    public async Task Scrub_FlippedAndTruncatedFiles_AreQuarantined_GoodOnesKept()
    {
        var good = await _cache.PutBlobAsync(Bytes(100_000, 1));
        var flipped = await _cache.PutBlobAsync(Bytes(100_000, 2));
        var truncated = await _cache.PutBlobAsync(Bytes(100_000, 3));
        var path = _cache.BlobPath(flipped);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[50_000] ^= 1;
        await File.WriteAllBytesAsync(path, bytes);
        await File.WriteAllBytesAsync(_cache.BlobPath(truncated), Bytes(100_000, 3)[..10]);
        var scrub = new ScrubService(_cache.Cache, TimeProvider.System, Options.Create(new CacheOptions { ScrubRate = new ByteSize(1L << 30) }), NullLogger<ScrubService>.Instance);

        var report = await scrub.ScrubAsync(CancellationToken.None);

        Assert.Equal(2, report.Damaged);
        Assert.NotNull(await _cache.Cache.LookupAsync(good, CancellationToken.None));
        Assert.Null(await _cache.Cache.LookupAsync(flipped, CancellationToken.None));
        Assert.Null(await _cache.Cache.LookupAsync(truncated, CancellationToken.None));
        Assert.Equal(2, Directory.EnumerateFiles(Path.Combine(_cache.Root, "quarantine")).Count());
        Assert.Equal((1L, 100_000L), (_cache.Cache.ObjectCount, _cache.Cache.TotalBytes));
    }

    [Fact]
    public async Task Rebuild_AfterACrash_IndexesEveryFileAndTagAndRecountsTheTotals()
    {
        var first = await _cache.PutBlobAsync(Bytes(1000, 1));
        var second = await _cache.PutBlobAsync(Bytes(2000, 2));
        await _cache.Cache.PutTagAsync("docker.io", "library/app", "1", new TagRecord(first, MirrorProxy.Oci.MediaTypes.OciManifest, 1000, DateTimeOffset.UnixEpoch),
            digestChanged: true, CancellationToken.None);
        Directory.Delete(Path.Combine(_cache.Root, "index"), recursive: true);
        await _cache.ReopenAsync(clean: false);
        Assert.False(_cache.Cache.IndexTrusted);
        var maintenance = new IndexMaintenanceService(_cache.Cache, TimeProvider.System, Options.Create(new CacheOptions { RebuildRate = 1000 }), NullLogger<IndexMaintenanceService>.Instance);

        await maintenance.RebuildAsync(CancellationToken.None);

        Assert.True(_cache.Cache.IndexTrusted);
        Assert.Equal((2L, 3000L), (_cache.Cache.ObjectCount, _cache.Cache.TotalBytes));
        Assert.Equal(1000, (await _cache.Cache.Index.GetContentAsync(first))!.Value.Size);
        Assert.Equal(2000, (await _cache.Cache.Index.GetContentAsync(second))!.Value.Size);
        Assert.Equal(first, (await _cache.Cache.Index.GetTagAsync("docker.io", "library/app", "1"))!.Digest);
    }

    public void Dispose() => _cache.Dispose();

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
