using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;
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
        await RebuildAsync(new CacheOptions { RebuildRate = 1000 });

        Assert.True(_cache.Cache.IndexTrusted);
        Assert.Equal((2L, 3000L), (_cache.Cache.ObjectCount, _cache.Cache.TotalBytes));
        Assert.Equal(1000, (await _cache.Cache.Index.GetContentAsync(first))!.Value.Size);
        Assert.Equal(2000, (await _cache.Cache.Index.GetContentAsync(second))!.Value.Size);
        Assert.Equal(first, (await _cache.Cache.Index.GetTagAsync("docker.io", "library/app", "1"))!.Digest);
    }

    /// <summary>
    /// After a crash the recovered checkpoint holds what was committed before it: files older than its time are
    /// counted without a look-up, files written since are looked up and indexed. An old file the checkpoint does
    /// not hold (its entry dropped before the checkpoint while the file stayed) is left to its first request.
    /// </summary>
    [Fact]
    public async Task Rebuild_AfterACrash_LooksUpOnlyTheFilesWrittenSinceTheCheckpoint()
    {
        var indexed = await _cache.PutBlobAsync(Bytes(1000, 1));
        var unindexed = await _cache.PutBlobAsync(Bytes(2000, 2));
        await _cache.ReopenAsync(clean: true);
        Assert.True(_cache.Cache.IndexTrusted);
        var anHourAgo = DateTime.UtcNow.AddHours(-1);
        File.SetLastWriteTimeUtc(_cache.BlobPath(indexed), anHourAgo);
        File.SetLastWriteTimeUtc(_cache.BlobPath(unindexed), anHourAgo);
        _cache.Cache.Index.DeleteContent(unindexed);
        _cache.Cache.SaveTotals();
        await _cache.Cache.Index.CheckpointAsync(full: true, CancellationToken.None);
        var recent = await _cache.PutBlobAsync(Bytes(3000, 3));
        await _cache.ReopenAsync(clean: false);
        Assert.False(_cache.Cache.IndexTrusted);
        Assert.Null(await _cache.Cache.Index.GetContentAsync(recent));
        await RebuildAsync(new CacheOptions { RebuildRate = 1000 });

        Assert.True(_cache.Cache.IndexTrusted);
        Assert.Equal((3L, 6000L), (_cache.Cache.ObjectCount, _cache.Cache.TotalBytes));
        Assert.Equal(1000, (await _cache.Cache.Index.GetContentAsync(indexed))!.Value.Size);
        Assert.Equal(3000, (await _cache.Cache.Index.GetContentAsync(recent))!.Value.Size);
        Assert.Null(await _cache.Cache.Index.GetContentAsync(unindexed));
        Assert.Equal(2000, (await _cache.Cache.LookupAsync(unindexed, CancellationToken.None))!.Value.Size);
        Assert.Equal(2000, (await _cache.Cache.Index.GetContentAsync(unindexed))!.Value.Size);
    }

    /// <summary>
    /// The rate counts blocks: 40 objects of 100 bytes at 40 blocks a second take about a second (counted in bytes,
    /// 4,000 of them at 160 KiB/s, 24 ms).
    /// </summary>
    [Fact]
    public async Task Scrub_SmallObjects_ArePacedInWholeBlocks()
    {
        for (var i = 0; i < 40; i++)
        {
            await _cache.PutBlobAsync(Bytes(100, 100 + i));
        }

        var scrub = new ScrubService(_cache.Cache, TimeProvider.System, Options.Create(new CacheOptions { ScrubRate = new ByteSize(40 * 4096) }), NullLogger<ScrubService>.Instance);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var report = await scrub.ScrubAsync(CancellationToken.None);

        Assert.Equal((40L, 4000L, 0), (report.Objects, report.Bytes, report.Damaged));
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"40 small objects scrubbed in {watch.Elapsed.TotalMilliseconds:0} ms at 40 blocks/s");
        Assert.Equal([4096L, 4096L, 4096L, 8192L], new long[] { ScrubService.Blocks(0), ScrubService.Blocks(1), ScrubService.Blocks(4096), ScrubService.Blocks(4097) });
    }

    /// <summary>
    /// A round a stop interrupts goes on from the shard it was in at the next start: the shards before it are not
    /// read again (a damaged object there waits for the next round), the ones after it are, and the round then ends.
    /// </summary>
    [Fact]
    public async Task Scrub_StoppedPartWay_GoesOnFromTheShardItWasIn()
    {
        var digests = new List<Digest>();
        for (var i = 0; i < 40; i++)
        {
            digests.Add(await _cache.PutBlobAsync(Bytes(100, 200 + i)));
        }

        static string ShardOf(Digest digest) => ContentShards.Of(digest).ToString();
        var firstShard = digests.Select(ShardOf).Order(StringComparer.Ordinal).First();
        // One block a second on a clock that moves only when told: the round goes about one object per second moved.
        var clock = new ManualTimeProvider();
        var slow = new ScrubService(_cache.Cache, clock, Options.Create(new CacheOptions { ScrubRate = new ByteSize(4096) }), NullLogger<ScrubService>.Instance);
        using var stop = new CancellationTokenSource();
        var round = slow.ScrubAsync(stop.Token);
        string? cursor = null;
        for (var step = 0; step < 400 && (cursor is null || cursor == firstShard) && !round.IsCompleted; step++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10);
            cursor = await ReadCursorAsync();
        }

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => round);
        Assert.NotNull(cursor);
        Assert.Equal(cursor, await ReadCursorAsync());
        var done = digests.Where(d => string.CompareOrdinal(ShardOf(d), cursor) < 0).ToList();
        var left = digests.Except(done).ToList();
        Assert.NotEmpty(done);
        Assert.True(left.Count > 1, $"the round was stopped at {cursor} with {left.Count} objects left");
        var damagedBefore = done[0];
        var damagedAfter = left[^1];
        foreach (var damaged in new[] { damagedBefore, damagedAfter })
        {
            var bytes = await File.ReadAllBytesAsync(_cache.BlobPath(damaged));
            bytes[10] ^= 1;
            await File.WriteAllBytesAsync(_cache.BlobPath(damaged), bytes);
        }

        var scrub = new ScrubService(_cache.Cache, TimeProvider.System, Options.Create(new CacheOptions { ScrubRate = new ByteSize(1L << 30) }), NullLogger<ScrubService>.Instance);
        var resumed = await scrub.ScrubAsync(CancellationToken.None);

        Assert.Equal((cursor, (long)left.Count, 1), (resumed.ResumedAt, resumed.Objects, resumed.Damaged));
        Assert.Null(await _cache.Cache.LookupAsync(damagedAfter, CancellationToken.None));
        Assert.True(File.Exists(_cache.BlobPath(damagedBefore)), "the shards before the cursor were not read again");
        Assert.Null(await ReadCursorAsync());

        var next = await scrub.ScrubAsync(CancellationToken.None);

        Assert.Equal((null, 39L, 1), (next.ResumedAt, next.Objects, next.Damaged));
        Assert.False(File.Exists(_cache.BlobPath(damagedBefore)));
    }

    /// <summary>After a crash the index rebuild walks the files first: the scrub's first round starts once it is done, and the start delay has passed.</summary>
    [Fact]
    public async Task Scrub_AfterACrash_WaitsForTheIndexRebuild()
    {
        var flipped = await _cache.PutBlobAsync(Bytes(1000, 7));
        var path = _cache.BlobPath(flipped);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[10] ^= 1;
        await File.WriteAllBytesAsync(path, bytes);
        await _cache.ReopenAsync(clean: false);
        Assert.False(_cache.Cache.IndexTrusted);
        var options = Options.Create(new CacheOptions { ScrubRate = new ByteSize(1L << 30), RebuildRate = 1000, ScrubStartDelay = TimeSpan.FromMilliseconds(200) });
        using var scrub = new ScrubService(_cache.Cache, TimeProvider.System, options, NullLogger<ScrubService>.Instance);

        await scrub.StartAsync(CancellationToken.None);
        await Task.Delay(300);
        Assert.Null(scrub.LastRound);
        Assert.True(File.Exists(path));

        var trustedAt = _cache.Cache.WhenIndexTrusted.ContinueWith(_ => TimeProvider.System.GetUtcNow(), TaskScheduler.Default);
        await RebuildAsync(options.Value);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (scrub.LastRound is null && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        await scrub.StopAsync(CancellationToken.None);
        Assert.Equal(1, scrub.LastRound?.Damaged);
        var afterTrust = scrub.LastRound!.Value.Completed - await trustedAt;
        Assert.True(afterTrust >= TimeSpan.FromMilliseconds(100), $"the round ended {afterTrust.TotalMilliseconds:0} ms after the index was trusted, within the 200 ms start delay");
        Assert.False(File.Exists(path));
    }

    public void Dispose() => _cache.Dispose();

    private async Task<string?> ReadCursorAsync() =>
        await _cache.Cache.Metadata.ReadAsync(ScrubService.CursorKey, 64, CancellationToken.None) is { } cursor ? System.Text.Encoding.ASCII.GetString(cursor) : null;

    private Task RebuildAsync(CacheOptions options) =>
        new IndexMaintenanceService(_cache.Cache, TimeProvider.System, Options.Create(options), NullLogger<IndexMaintenanceService>.Instance).RebuildAsync(CancellationToken.None);

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
