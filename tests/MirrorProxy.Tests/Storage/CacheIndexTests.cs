using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Storage;

public sealed class CacheIndexTests : IDisposable
{
    private static readonly IndexSettings Settings = new(1 << 16, 1 << 18);
    private static readonly Digest First = Digest.ComputeSha256("first"u8);
    private static readonly Digest Second = Digest.ComputeSha256("second"u8);
    private static readonly DateTimeOffset At = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _temp = new();
    private CacheIndex _index;

    public CacheIndexTests() => _index = Open();

    [Fact]
    public async Task Content_PutGetDelete_RoundTripsEveryField()
    {
        var manifest = new ContentEntry(1234, ContentKind.Manifest, MediaTypes.OciIndex, At);
        var blob = new ContentEntry(5, ContentKind.Blob, null, At.AddMinutes(1));

        _index.PutContent(First, manifest);
        _index.PutContent(Second, blob);

        Assert.Equal(manifest, await _index.GetContentAsync(First));
        Assert.Equal(blob, await _index.GetContentAsync(Second));
        Assert.Same(MediaTypes.OciIndex, (await _index.GetContentAsync(First))!.Value.MediaType);

        _index.DeleteContent(First);
        Assert.Null(await _index.GetContentAsync(First));
    }

    [Fact]
    public async Task Tag_Sha512DigestAndCustomType_RoundTrips()
    {
        Assert.True(Digest.TryParse("sha512:" + new string('a', 128), out var digest));
        var record = new TagRecord(digest, "application/vnd.example.thing+json", 77, At);

        _index.PutTag("ghcr.io", "org/app", "v1", record);

        Assert.Equal(record, await _index.GetTagAsync("ghcr.io", "org/app", "v1"));
        Assert.Null(await _index.GetTagAsync("ghcr.io", "org/app", "v2"));
        Assert.Null(await _index.GetTagAsync("docker.io", "org/app", "v1"));
    }

    [Theory]
    [InlineData(true, "Clean")]
    [InlineData(false, "Stale")]
    public async Task Reopen_AfterACheckpoint_RecoversAndSaysWhetherTheStopWasClean(bool clean, string expected)
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        _index.PutState("totals", 10, 1);
        if (clean)
        {
            await _index.CloseCleanlyAsync(CancellationToken.None);
        }
        else
        {
            await _index.CheckpointAsync(full: false, CancellationToken.None);
        }

        Reopen();

        Assert.Equal(Enum.Parse<IndexRecovery>(expected), _index.Recovery);
        Assert.Equal(1, (await _index.GetContentAsync(First))!.Value.Size);
        Assert.Equal((10L, 1L), await _index.GetStateAsync("totals"));
    }

    [Fact]
    public async Task Reopen_CleanMarkIsUsedOnce_ACrashAfterTheNextStartIsStale()
    {
        await _index.CloseCleanlyAsync(CancellationToken.None);
        Reopen();
        Assert.Equal(IndexRecovery.Clean, _index.Recovery);

        Reopen();

        Assert.Equal(IndexRecovery.Stale, _index.Recovery);
    }

    [Fact]
    public async Task Reopen_LogCheckpointsOnTopOfTheFirstIndexCheckpoint_Recover()
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        await _index.CheckpointAsync(full: false, CancellationToken.None);
        _index.PutContent(Second, new ContentEntry(2, ContentKind.Blob, null, At));
        await _index.CheckpointAsync(full: false, CancellationToken.None);

        Reopen();

        Assert.NotNull(await _index.GetContentAsync(First));
        Assert.NotNull(await _index.GetContentAsync(Second));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("empty")]
    public async Task Reopen_DamagedCheckpoint_StartsEmptyInsteadOfFailing(string damage)
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        await _index.CloseCleanlyAsync(CancellationToken.None);
        _index.Dispose();
        foreach (var file in Directory.GetFiles(_temp.Combine("checkpoints"), "*", SearchOption.AllDirectories))
        {
            File.WriteAllBytes(file, damage == "empty" ? [] : Encoding.ASCII.GetBytes("this is not a FASTER checkpoint \0\xff\x01 garbage"));
        }

        _index = Open();

        // Whatever FASTER made of the damage, the index does not claim to agree with the files.
        Assert.NotEqual(IndexRecovery.Clean, _index.Recovery);
    }

    [Fact]
    public async Task Reopen_OneByteOfTheLogFlipped_StartsEmpty_WithoutHandingTheLogToFaster()
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        await _index.CloseCleanlyAsync(CancellationToken.None);
        _index.Dispose();
        var log = _temp.Combine("hlog.log.0");
        var bytes = File.ReadAllBytes(log);
        bytes[64] ^= 0x40; // the first record's header
        File.WriteAllBytes(log, bytes);

        Assert.False(IndexSeal.Verify(_temp.Path, out var reason));
        Assert.Contains("hlog.log.0", reason, StringComparison.Ordinal);
        _index = Open();
        Assert.Equal(IndexRecovery.Empty, _index.Recovery);
        Assert.Null(await _index.GetContentAsync(First));
    }

    /// <summary>
    /// A checkpoint's seal reads only the log it has not sealed before: a full segment keeps its hash, so damage to it
    /// after it was sealed is still found at the next start (hashing it again would have sealed the damage).
    /// </summary>
    [Fact]
    public async Task Seal_NextCheckpoint_KeepsTheHashOfAFullSegment_AndDamageToItIsStillFound()
    {
        for (var i = 0; i < 60_000; i++)
        {
            _index.PutContent(Digest.ComputeSha256(BitConverter.GetBytes(i)), new ContentEntry(i, ContentKind.Blob, null, At));
        }

        await _index.CheckpointAsync(full: false, CancellationToken.None);
        var firstSeal = File.ReadAllLines(_temp.Combine("seal"));
        var fullSegment = Assert.Single(firstSeal, line => line.StartsWith("hlog.log.0 ", StringComparison.Ordinal));
        Assert.Equal(4L << 20, long.Parse(fullSegment.Split(' ')[1]) + long.Parse(fullSegment.Split(' ')[2]));
        Assert.Contains(firstSeal, line => line.StartsWith("hlog.log.1 ", StringComparison.Ordinal));
        using (var segment = File.OpenHandle(_temp.Combine("hlog.log.0"), FileMode.Open, FileAccess.ReadWrite))
        {
            var one = new byte[1];
            RandomAccess.Read(segment, one, 1 << 20);
            one[0] ^= 0x01;
            RandomAccess.Write(segment, one, 1 << 20);
        }

        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        await _index.CheckpointAsync(full: false, CancellationToken.None);

        var secondSeal = File.ReadAllLines(_temp.Combine("seal"));
        Assert.Contains(fullSegment, secondSeal);
        Assert.NotEqual(firstSeal.Single(l => l.StartsWith("hlog.log.1 ", StringComparison.Ordinal)), secondSeal.Single(l => l.StartsWith("hlog.log.1 ", StringComparison.Ordinal)));
        Assert.False(IndexSeal.Verify(_temp.Path, out var reason));
        Assert.Contains("hlog.log.0 does not match", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Seal_ACheckpointWrittenAfterIt_IsNotTrusted_AndTheDeltaLogBesideASealedOneIs()
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        await _index.CloseCleanlyAsync(CancellationToken.None);
        _index.Dispose();
        Assert.True(IndexSeal.Verify(_temp.Path, out var reason), reason);

        var sealedCheckpoint = Directory.GetDirectories(_temp.Combine("checkpoints", "cpr-checkpoints")).Single();
        File.WriteAllBytes(Path.Combine(sealedCheckpoint, "delta.dat.0"), [1, 2, 3]);
        Assert.True(IndexSeal.Verify(_temp.Path, out reason), reason);

        var unsealed = Directory.CreateDirectory(_temp.Combine("checkpoints", "cpr-checkpoints", Guid.NewGuid().ToString()));
        File.WriteAllBytes(Path.Combine(unsealed.FullName, "info.dat.0"), [1, 2, 3]);
        Assert.False(IndexSeal.Verify(_temp.Path, out reason));
        Assert.Contains("newer than the seal", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compact_ManyUpdatesOfFewKeys_ShrinksTheLogAndKeepsTheLatestValues()
    {
        var digests = Enumerable.Range(0, 200).Select(i => Digest.ComputeSha256(BitConverter.GetBytes(i))).ToArray();
        for (var round = 0; round < 100; round++)
        {
            foreach (var digest in digests)
            {
                // Alternating value lengths defeat in-place updates: every update appends.
                _index.PutContent(digest, new ContentEntry(round, round % 2 == 0 ? ContentKind.Blob : ContentKind.Manifest, round % 2 == 0 ? null : "application/vnd.x" + round + "+json", At));
            }
        }

        var (before, after) = _index.Compact();

        Assert.True(after < before / 4, $"log {before} -> {after} bytes");
        foreach (var digest in digests)
        {
            Assert.Equal(99, (await _index.GetContentAsync(digest))!.Value.Size);
        }

        Assert.False(_index.NeedsCompaction(0));
    }

    [Fact]
    public void ScanContent_ReportsEveryContentRecordAndDeletions_AndSkipsTags()
    {
        _index.PutContent(First, new ContentEntry(1, ContentKind.Blob, null, At));
        _index.PutContent(Second, new ContentEntry(2, ContentKind.Blob, null, At.AddSeconds(1)));
        _index.PutTag("docker.io", "library/nginx", "1", new TagRecord(First, MediaTypes.OciManifest, 1, At));
        _index.DeleteContent(First);
        var seen = new List<(Digest, bool, long)>();
        var visitor = new Recorder(seen);

        _index.ScanContent(ref visitor);

        // In the mutable region a delete marks the record in place; older versions may also appear: the last report per key is the state.
        var last = seen.GroupBy(r => r.Item1).ToDictionary(g => g.Key, g => g.Last());
        Assert.Equal(2, last.Count);
        Assert.True(last[First].Item2);
        Assert.Equal((Second, false, 2L), last[Second]);
    }

    private readonly struct Recorder(List<(Digest, bool, long)> seen) : IContentVisitor
    {
        public void Visit(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccessMilliseconds)
        {
            Assert.True(IndexRecords.TryReadContentKey(key, out var digest));
            seen.Add((digest, deleted, size));
        }
    }

    private CacheIndex Open() => CacheIndex.Open(_temp.Path, Settings, NullLogger.Instance);

    private void Reopen()
    {
        _index.Dispose();
        _index = Open();
    }

    public void Dispose()
    {
        _index.Dispose();
        _temp.Dispose();
    }
}
