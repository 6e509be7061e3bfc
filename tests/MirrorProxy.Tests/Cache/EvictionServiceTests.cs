using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cache;

public sealed class EvictionServiceTests : IDisposable
{
    private readonly ManualTimeProvider _time = new();
    private readonly TestCache _cache;
    private readonly Pins _pins = new();

    public EvictionServiceTests() => _cache = new TestCache(_time, memory: 0);

    [Fact]
    public async Task Evict_OverBudget_RemovesTheLeastRecentlyUsedDownToNineTenths()
    {
        var digests = await FillAsync(count: 20, size: 1000);
        var service = Create(maxSize: 10_000);

        var (objects, bytes) = await service.EvictAsync(CancellationToken.None);

        Assert.Equal(11, objects);
        Assert.Equal(11_000, bytes);
        Assert.Equal(9000, _cache.Cache.TotalBytes);
        foreach (var evicted in digests[..11])
        {
            Assert.Null(await _cache.Cache.LookupAsync(evicted, CancellationToken.None));
        }

        foreach (var kept in digests[11..])
        {
            Assert.NotNull(await _cache.Cache.LookupAsync(kept, CancellationToken.None));
        }
    }

    [Fact]
    public async Task Evict_ARecentAccess_MovesAnObjectToTheBackOfTheLine()
    {
        var digests = await FillAsync(count: 10, size: 1000);
        _time.Advance(TimeSpan.FromMinutes(5));
        _cache.Cache.Touch(digests[0], (await _cache.Cache.LookupAsync(digests[0], CancellationToken.None))!.Value);
        var service = Create(maxSize: 9000);

        await service.EvictAsync(CancellationToken.None);

        Assert.NotNull(await _cache.Cache.LookupAsync(digests[0], CancellationToken.None));
        Assert.Null(await _cache.Cache.LookupAsync(digests[1], CancellationToken.None));
    }

    [Fact]
    public async Task Evict_PinnedAndRecentContent_IsNeverAVictim()
    {
        var digests = await FillAsync(count: 10, size: 1000);
        _pins.Add(digests[0]);
        _pins.Add(digests[1]);
        var service = Create(maxSize: 5000);

        await service.EvictAsync(CancellationToken.None);

        Assert.NotNull(await _cache.Cache.LookupAsync(digests[0], CancellationToken.None));
        Assert.NotNull(await _cache.Cache.LookupAsync(digests[1], CancellationToken.None));
        Assert.True(_cache.Cache.TotalBytes <= 4500);
    }

    [Fact]
    public async Task Evict_EverythingWithinTheGracePeriod_StopsWithoutLooping()
    {
        await FillAsync(count: 5, size: 1000);
        var service = Create(maxSize: 1000, grace: TimeSpan.FromHours(1));

        var (objects, _) = await service.EvictAsync(CancellationToken.None);

        Assert.Equal(0, objects);
        Assert.Equal(5000, _cache.Cache.TotalBytes);
    }

    [Fact]
    public async Task ChooseVictims_OlderVersionsOfAnEntry_DoNotMakeARecentlyUsedObjectAVictim()
    {
        var digests = await FillAsync(count: 3, size: 1000);
        // Push every record out of the mutable region so that the next touch appends a new version.
        for (var i = 0; i < 20_000; i++)
        {
            _cache.Cache.Index.PutTag("x", "y", i.ToString(System.Globalization.CultureInfo.InvariantCulture), new TagRecord(digests[0], MediaTypes.OciManifest, 1, _time.GetUtcNow()));
        }

        _time.Advance(TimeSpan.FromHours(1));
        _cache.Cache.Touch(digests[0], (await _cache.Cache.LookupAsync(digests[0], CancellationToken.None))!.Value);

        var victims = Create(maxSize: 2000).ChooseVictims(2000);

        Assert.Equal([digests[1], digests[2]], victims.Select(v => v.Digest));
    }

    [Fact]
    public void ChooseVictims_MoreCandidatesThanSixtyFiveThousand_ReachesTheWholeTarget()
    {
        // 100,000 indexed objects of 100 bytes used in a shuffled order; the target needs the oldest 80,000 of them,
        // more than a pass could once hold (65,536).
        const int count = 100_000;
        const int needed = 80_000;
        var order = Enumerable.Range(0, count).ToArray();
        new Random(7).Shuffle(order);
        var start = _time.GetUtcNow();
        var ageOf = new Dictionary<Digest, int>();
        for (var i = 0; i < count; i++)
        {
            var digest = Digest.ComputeSha256(BitConverter.GetBytes(i));
            ageOf[digest] = order[i];
            _cache.Cache.Index.PutContent(digest, new ContentEntry(100, ContentKind.Blob, null, start.AddMinutes(order[i])));
        }

        _time.Advance(TimeSpan.FromMinutes(count));

        var victims = Create(maxSize: count * 100).ChooseVictims(needed * 100L);

        Assert.Equal(needed, victims.Count);
        Assert.Equal(Enumerable.Range(0, needed), victims.Select(v => ageOf[v.Digest]));
        Assert.All(victims, v => Assert.Equal(100, v.Size));
    }

    /// <summary>
    /// 30,000 bytes down to nine tenths of the budget, the oldest objects found four at a time: with a budget of
    /// 23,000 the cache is within it after two scans (22,000 bytes), and the pass goes on to 20,700 all the same.
    /// </summary>
    [Theory]
    [InlineData(20_000, 12)]
    [InlineData(23_000, 10)]
    public async Task Evict_MoreVictimsThanOneScanHolds_ScansAgainUntilTheTargetIsFreed(long maxSize, int expected)
    {
        var digests = await FillAsync(count: 30, size: 1000);
        var service = Create(maxSize);
        service.MaxCandidates = 4;

        var (objects, bytes) = await service.EvictAsync(CancellationToken.None);

        Assert.Equal(expected, objects);
        Assert.Equal(expected * 1000L, bytes);
        Assert.Equal(30_000 - expected * 1000L, _cache.Cache.TotalBytes);
        foreach (var evicted in digests[..expected])
        {
            Assert.Null(await _cache.Cache.LookupAsync(evicted, CancellationToken.None));
        }

        foreach (var kept in digests[expected..])
        {
            Assert.NotNull(await _cache.Cache.LookupAsync(kept, CancellationToken.None));
        }
    }

    /// <summary>
    /// A pass deletes its victims by appending their deletions to the index log (their records are below the last
    /// checkpoint, no longer changed in place): until a compaction, the next scan meets each old record before its
    /// deletion. Those records held the candidates' places and the objects they pushed out were not seen again, so
    /// the next pass found nothing to evict.
    /// </summary>
    [Fact]
    public async Task Evict_ASecondPassBeforeACompaction_StillFreesItsWholeTarget()
    {
        var digests = await FillAsync(count: 100, size: 1000);
        await _cache.Cache.Index.CheckpointAsync(full: false, CancellationToken.None);
        Assert.Equal((11, 11_000L), await Create(maxSize: 99_999).EvictAsync(CancellationToken.None));
        Assert.Equal(89_000, _cache.Cache.TotalBytes);

        var (objects, bytes) = await Create(maxSize: 88_999).EvictAsync(CancellationToken.None);

        Assert.Equal((9, 9000L), (objects, bytes));
        Assert.Equal(80_000, _cache.Cache.TotalBytes);
        foreach (var evicted in digests[..20])
        {
            Assert.Null(await _cache.Cache.LookupAsync(evicted, CancellationToken.None));
        }

        Assert.NotNull(await _cache.Cache.LookupAsync(digests[20], CancellationToken.None));
    }

    public void Dispose() => _cache.Dispose();

    /// <summary>Stores objects one minute apart: the first is the least recently used.</summary>
    private async Task<Digest[]> FillAsync(int count, int size)
    {
        var digests = new Digest[count];
        for (var i = 0; i < count; i++)
        {
            var content = new byte[size];
            BitConverter.TryWriteBytes(content, i);
            digests[i] = await _cache.PutBlobAsync(content);
            _time.Advance(TimeSpan.FromMinutes(1));
        }

        return digests;
    }

    private EvictionService Create(long maxSize, TimeSpan grace = default)
    {
        var options = Options.Create(new CacheOptions { Path = _cache.Root, MaxSize = new ByteSize(maxSize), EvictionGracePeriod = grace });
        return new EvictionService(_cache.Cache, new CacheBudget(_cache.Cache, options), _pins, TestMetrics.Create(), _time, options, NullLogger<EvictionService>.Instance);
    }

    private sealed class Pins : IPinnedContent
    {
        private readonly HashSet<string> _pinned = [];

        public void Add(Digest digest) => _pinned.Add(digest.Value);

        public bool IsPinned(string digest) => _pinned.Contains(digest);

        public IReadOnlyCollection<string> PinnedDigests => _pinned;
    }
}
