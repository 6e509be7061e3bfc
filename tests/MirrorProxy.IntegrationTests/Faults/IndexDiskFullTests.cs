using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.IntegrationTests.Infrastructure.Disks;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// The cache index on a disk that fills up under it. FASTER does not retry a flush of its log that failed, and a
/// write that needs the memory of the unflushed page waits for it forever: before the index noticed failed writes,
/// the 20,000 writes below never finished, and a compaction never returned.
/// </summary>
public sealed class IndexDiskFullTests(ITestOutputHelper output)
{
    private static readonly DateTimeOffset At = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task AFullDisk_StopsTheIndexFromWriting_NotTheCallers_AndTheNextStartDoesNotTrustIt()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using var disk = await TmpfsDisk.MountAsync(64L << 20, cts.Token);
        var directory = disk.Combine("index");
        var settings = new IndexSettings(1 << 16, 1 << 20);
        var before = Enumerable.Range(0, 20_000).Select(Key).ToList();
        using (var index = CacheIndex.Open(directory, settings, NullLogger.Instance))
        {
            foreach (var digest in before)
            {
                index.PutContent(digest, new ContentEntry(100, ContentKind.Blob, null, At));
            }

            await index.CheckpointAsync(full: true, cts.Token);
            var filled = await disk.FillAsync(cancellationToken: cts.Token);
            output.WriteLine($"log {index.LogBytes} bytes; disk filled with {filled} bytes");

            // Four times the log's memory: its pages must be flushed to make room, and the disk takes none of them.
            var writes = Task.Factory.StartNew(
                () =>
                {
                    for (var i = 0; i < 50_000; i++)
                    {
                        index.PutContent(Key(1_000_000 + i), new ContentEntry(100, ContentKind.Blob, null, At));
                    }
                },
                cts.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            Assert.True(await Task.WhenAny(writes, Task.Delay(TimeSpan.FromSeconds(30), cts.Token)) == writes, "the writes finished");
            await writes;
            output.WriteLine($"writes dropped: {index.WritesDropped} of 50,000");

            Assert.False(index.AcceptsWrites);
            Assert.InRange(index.WritesDropped, 1, 50_000);
            foreach (var digest in before.Where((_, i) => i % 500 == 0))
            {
                Assert.Equal(100, (await index.GetContentAsync(digest))?.Size);
            }

            var compaction = await index.CompactAsync(wholeLog: true, cts.Token).WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            output.WriteLine($"compaction: {compaction.Outcome}: {compaction.Failure}");
            Assert.Equal(IndexCompactionOutcome.Failed, compaction.Outcome);
            await index.CheckpointAsync(full: true, cts.Token).WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            await index.CloseCleanlyAsync(cts.Token).WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            Assert.False(File.Exists(Path.Combine(directory, "clean-stop")), "an index that dropped writes is not marked clean");
        }

        disk.DeleteFill();
        using (var reopened = CacheIndex.Open(directory, settings, NullLogger.Instance))
        {
            output.WriteLine($"reopened: {reopened.Recovery}");
            Assert.NotEqual(IndexRecovery.Clean, reopened.Recovery);
            Assert.True(reopened.AcceptsWrites);
            reopened.PutContent(Key(5_000_000), new ContentEntry(7, ContentKind.Blob, null, At));
            Assert.Equal(7, (await reopened.GetContentAsync(Key(5_000_000)))?.Size);
            if (reopened.Recovery == IndexRecovery.Stale)
            {
                Assert.Equal(100, (await reopened.GetContentAsync(before[^1]))?.Size);
            }
        }
    }

    /// <summary>A checkpoint on a full disk, with a few changes in memory: it must end, one way or the other, and the index go on.</summary>
    [Fact]
    public async Task ACheckpointOnAFullDisk_Ends_AndTheIndexGoesOn()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using var disk = await TmpfsDisk.MountAsync(64L << 20, cts.Token);
        using var index = CacheIndex.Open(disk.Combine("index"), new IndexSettings(1 << 16, 1 << 20), NullLogger.Instance);
        index.PutContent(Key(1), new ContentEntry(1, ContentKind.Blob, null, At));
        await index.CheckpointAsync(full: true, cts.Token);
        index.PutContent(Key(2), new ContentEntry(2, ContentKind.Blob, null, At));
        await disk.FillAsync(cancellationToken: cts.Token);

        var checkpoint = index.CheckpointAsync(full: true, cts.Token).WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
        var outcome = await Record.ExceptionAsync(() => checkpoint);
        output.WriteLine($"checkpoint on the full disk: {outcome?.GetType().Name ?? "completed"} {outcome?.Message}; accepts writes: {index.AcceptsWrites}");

        Assert.IsNotType<TimeoutException>(outcome);
        Assert.Equal(2, (await index.GetContentAsync(Key(2)))?.Size);
        index.PutContent(Key(3), new ContentEntry(3, ContentKind.Blob, null, At));
        Assert.True(index.AcceptsWrites ? (await index.GetContentAsync(Key(3)))?.Size == 3 : index.WritesDropped > 0);
    }

    private static Digest Key(int i) => Digest.ComputeSha256(BitConverter.GetBytes(i));
}
