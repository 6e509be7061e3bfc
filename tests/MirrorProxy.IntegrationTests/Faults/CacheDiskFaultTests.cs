using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Disks;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// The real program's cache disk fills up, turns read-only or fails with EIO while a real upstream is reachable:
/// the mirror goes on serving (a cached tag past its TTL, a new manifest served without being kept, a new blob
/// relayed whole, containerd pulling the cached image), stays ready while reporting itself degraded and counting
/// the failed writes, and keeps new content again once the disk is back.
/// </summary>
public sealed class CacheDiskFaultTests : IAsyncLifetime
{
    private const string Upstream = "docker.io";
    private const long DiskSize = 64L << 20;
    private readonly TempDirectory _work = new("disk-faults");
    private TestRegistry _registry = null!;
    private TestImage _cached = null!;
    private TestImage _fresh = null!;
    private TestImage _afterRecovery = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        _cached = await OciImageFactory.PushDockerImageAsync(_registry, "disk/cached", "1", "disk-cached");
        _fresh = await OciImageFactory.PushDockerImageAsync(_registry, "disk/fresh", "1", "disk-fresh");
        _afterRecovery = await OciImageFactory.PushDockerImageAsync(_registry, "disk/after", "1", "disk-after");
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    /// <param name="fault">full: filled to ENOSPC; read-only: remounted read-only; eio: every operation fails with EIO.</param>
    /// <param name="label">The <c>error</c> label the failed writes are counted under.</param>
    [Theory]
    [InlineData("full", "no_space")]
    [InlineData("read-only", "read_only")]
    [InlineData("eio", "io")]
    public async Task CacheDiskFails_MirrorServesAndRelays_ReportsDegraded_KeepsContentAgainOnceTheDiskIsBack(string fault, string label)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using var disk = await CacheDisk.MountAsync(fault, _work, cts.Token);
        var cache = disk.Cache;
        var mirror = await FaultSupport.StartProgramAsync(_work, cache, Upstream, _registry.BaseUri, new Dictionary<string, string>
        {
            ["MirrorProxy:TagTtl"] = "00:00:01",
            ["MirrorProxy:Cache:MinFreeDisk"] = "1MiB",
        });
        try
        {
            await PullAsync(mirror, _cached);
            var (status, ready) = await FaultSupport.ReadyzAsync(mirror.Client);
            Assert.Equal((200, "ready"), (status, ready.GetProperty("status").GetString()));

            await disk.FailAsync(cts.Token);
            await Task.Delay(TimeSpan.FromSeconds(1.2), cts.Token); // the cached tag is past its TTL now

            // A cached tag past its TTL, revalidated against the reachable upstream: 200 with the whole manifest.
            for (var i = 0; i < 2; i++)
            {
                using var tag = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl(_cached), cts.Token);
                Assert.Equal(HttpStatusCode.OK, tag.StatusCode);
                Assert.Equal(_cached.ManifestBytes, await tag.Content.ReadAsByteArrayAsync(cts.Token));
            }

            // A new manifest is served though it cannot be kept; a new blob is relayed, whole and verified.
            using (var manifest = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl(_fresh), cts.Token))
            {
                Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
                Assert.Equal(_fresh.ManifestBytes, await manifest.Content.ReadAsByteArrayAsync(cts.Token));
            }

            foreach (var blob in _fresh.Blobs)
            {
                using var response = await mirror.Client.GetAsync(BlobUrl(_fresh, blob), cts.Token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(blob.Content, await response.Content.ReadAsByteArrayAsync(cts.Token));
            }

            if (fault != "eio")
            {
                // (A failed disk cannot be looked at; a full or read-only one shows nothing was kept.)
                Assert.False(File.Exists(FaultSupport.BlobFile(cache, _fresh.Digest)));
                Assert.All(_fresh.Blobs, b => Assert.False(File.Exists(FaultSupport.BlobFile(cache, b.Digest))));
            }

            // containerd pulls the cached image through the mirror.
            var hosts = _work.Combine($"hosts-{fault}");
            ContainerdDaemon.WriteHostsToml(hosts, Upstream, mirror.BaseUri, mirrorOnly: true);
            await using (var containerd = await ContainerdDaemon.StartAsync(cts.Token))
            {
                (await containerd.PullAsync($"{Upstream}/{_cached.Repository}:{_cached.Tag}", hosts, "linux/amd64", cts.Token)).EnsureSuccess();
            }

            // Ready all along, reported degraded, with the failed writes counted.
            (status, ready) = await FaultSupport.ReadyzAsync(mirror.Client);
            Assert.Equal((200, "degraded"), (status, ready.GetProperty("status").GetString()));
            Assert.True(ready.GetProperty("cacheDegraded").GetBoolean());
            var metrics = await FaultSupport.ScrapeAsync(mirror.Client);
            Assert.True(metrics.Sum("mirrorproxy_cache_write_failures_total", ("error", label)) >= 1, $"no write failure counted as {label}");
            Assert.Equal(1, metrics.Sum("mirrorproxy_cache_degraded"));

            // The disk comes back: the next write succeeds, which clears the mark, and new content is kept again.
            await disk.RecoverAsync(cts.Token);
            using (var manifest = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl(_afterRecovery), cts.Token))
            {
                Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
                Assert.Equal(_afterRecovery.ManifestBytes, await manifest.Content.ReadAsByteArrayAsync(cts.Token));
            }

            Assert.True(File.Exists(FaultSupport.BlobFile(cache, _afterRecovery.Digest)));
            // (The exporter answers a scrape from the previous one for 300 ms.)
            await Eventually.TrueAsync(
                async () => (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_degraded") == 0, TimeSpan.FromSeconds(5), "the degraded gauge is 0");
            var layer = _afterRecovery.Layers.Single(l => l.Size > 1_000_000);
            Assert.Equal(layer.Content, await mirror.Client.GetByteArrayAsync(BlobUrl(_afterRecovery, layer), cts.Token));
            Assert.True(File.Exists(FaultSupport.BlobFile(cache, layer.Digest)));
            (status, ready) = await FaultSupport.ReadyzAsync(mirror.Client);
            Assert.Equal((200, "ready"), (status, ready.GetProperty("status").GetString()));
        }
        finally
        {
            await mirror.DisposeAsync();
        }
    }

    /// <summary>
    /// The disk under the index fills while requests go on writing to it: each of 2,000 tags of a cached image,
    /// pulled for the first time, is a new index record. FASTER never retries a failed flush of its log: before the
    /// index stopped writing at the first failed flush, the request that next needed the unflushed page's memory
    /// waited for good, and so did every one after it.
    /// </summary>
    [Fact]
    public async Task AFullDiskUnderTheIndex_ThousandsOfIndexWritesLater_CachedContentIsStillServed()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        await PushManyTagsAsync(cts.Token);
        await using var disk = await CacheDisk.MountAsync("full", _work, cts.Token);
        var settings = new Dictionary<string, string>
        {
            ["MirrorProxy:Cache:MinFreeDisk"] = "1MiB",
            ["MirrorProxy:Cache:LogMemoryBytes"] = "262144", // four 64 KiB pages: about 1,500 tag records fill them
        };
        var mirror = await FaultSupport.StartProgramAsync(_work, disk.Cache, Upstream, _registry.BaseUri, settings);
        try
        {
            await PullAsync(mirror, _cached);
            await disk.FailAsync(cts.Token);

            Assert.Equal(0, await PullManyTagsAsync(mirror, cts.Token));
            var layer = _cached.Layers.OrderByDescending(l => l.Size).First();
            await AssertServedWholeAsync(mirror, _cached, layer, "a cached layer after the index stopped writing", cts.Token);
            await AssertIndexReportedNotWritableAsync(mirror);

            // A stop does not wait for the flush that failed, and the next start does not take the index as clean.
            await mirror.StopAsync().WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            await mirror.DisposeAsync();
            await disk.RecoverAsync(cts.Token);
            mirror = await FaultSupport.StartProgramAsync(_work, disk.Cache, Upstream, _registry.BaseUri, settings);
            await mirror.Output.WaitForLineAsync(line => line.Text.Contains("Cache index rebuilt from the files", StringComparison.Ordinal), TimeSpan.FromSeconds(30), cts.Token);
            await PullAsync(mirror, _cached);
        }
        finally
        {
            await mirror.DisposeAsync();
        }
    }

    /// <summary>
    /// The index on a disk of its own, which fills, while the cache disk stays healthy: a tag that moves upstream
    /// afterwards is written to its file but not to the index, which then holds the tag's old digest. With the upstream
    /// gone, the tag is answered from its file, not from the index that missed the move; and content kept meanwhile,
    /// which the index does not learn, is counted once however often it is found in the files.
    /// </summary>
    [Fact]
    public async Task AnIndexThatStoppedWriting_AMovedTagIsAnsweredFromItsFile_AndContentIsCountedOnce()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        await PushManyTagsAsync(cts.Token);
        var before = await OciImageFactory.PushDockerImageAsync(_registry, "disk/moving", "v", "moving-before", cts.Token);
        var cache = _work.Combine("cache-index-apart");
        var indexDirectory = Path.Combine(cache, "index");
        Directory.CreateDirectory(indexDirectory);
        await using var indexDisk = await TmpfsDisk.MountAsync(16L << 20, cts.Token);
        await SystemCommand.RunAsync("mount", ["--bind", indexDisk.Path, indexDirectory], cts.Token);
        MirrorProcess? mirror = null;
        try
        {
            mirror = await FaultSupport.StartProgramAsync(_work, cache, Upstream, _registry.BaseUri, new Dictionary<string, string>
            {
                ["MirrorProxy:TagTtl"] = "00:00:00",
                ["MirrorProxy:Cache:LogMemoryBytes"] = "262144",
            });
            await PullAsync(mirror, before);
            await PullAsync(mirror, _cached);
            await indexDisk.FillAsync(cancellationToken: cts.Token);
            Assert.Equal(0, await PullManyTagsAsync(mirror, cts.Token));
            await AssertIndexReportedNotWritableAsync(mirror);

            // The tag moves upstream; pulled through the mirror, its file (on the healthy disk) follows, the index does not.
            var after = await OciImageFactory.PushDockerImageAsync(_registry, "disk/moving", "v", "moving-after", cts.Token);
            await PullAsync(mirror, after);

            // Its 3 MB layer, kept on the healthy disk but not indexed, is found in the files at each pull: counted once.
            await Task.Delay(TimeSpan.FromMilliseconds(400), cts.Token); // (the exporter answers a scrape from the previous one for 300 ms)
            var size = (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_size_bytes");
            await PullAsync(mirror, after);
            await PullAsync(mirror, after);
            await Task.Delay(TimeSpan.FromMilliseconds(400), cts.Token);
            Assert.Equal(size, (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_size_bytes"));
            await _registry.StopAsync(cts.Token);

            using var moved = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl(after), cts.Token);
            Assert.Equal(HttpStatusCode.OK, moved.StatusCode);
            Assert.Equal(after.ManifestBytes, await moved.Content.ReadAsByteArrayAsync(cts.Token));
        }
        finally
        {
            if (mirror is not null)
            {
                await mirror.DisposeAsync();
            }

            await DiskLeftovers.UnmountAsync(indexDirectory, CancellationToken.None);
        }
    }

    [Fact]
    public async Task ADamagedBlobOnAReadOnlyDisk_IsNeverServed_AndCountedOnlyWhileIndexed()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using var disk = await CacheDisk.MountAsync("read-only", _work, cts.Token);
        var mirror = await FaultSupport.StartProgramAsync(_work, disk.Cache, Upstream, _registry.BaseUri, new Dictionary<string, string>
        {
            ["MirrorProxy:Cache:MinFreeDisk"] = "1MiB",
        });
        try
        {
            await PullAsync(mirror, _cached);
            var layer = _cached.Layers.OrderByDescending(l => l.Size).First();
            var file = FaultSupport.BlobFile(disk.Cache, layer.Digest);
            await File.WriteAllBytesAsync(file, layer.Content[..(layer.Content.Length / 2)], cts.Token);
            var cached = (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_size_bytes");
            await disk.FailAsync(cts.Token);

            // The cut file can be neither moved aside nor deleted: the first request finds it short, and it and the
            // next ones relay the upstream's bytes. The file is not learned (and hashed) again at each request.
            for (var i = 0; i < 3; i++)
            {
                await AssertServedWholeAsync(mirror, _cached, layer, $"request {i}", cts.Token);
            }

            Assert.True(File.Exists(file), "the read-only disk kept the damaged file");
            var metrics = await FaultSupport.ScrapeAsync(mirror.Client);
            Assert.Equal(1, metrics.Sum("mirrorproxy_cache_quarantined_total"));
            var (status, ready) = await FaultSupport.ReadyzAsync(mirror.Client);
            Assert.Equal((200, "degraded"), (status, ready.GetProperty("status").GetString()));
            Assert.True(ready.GetProperty("cacheDegraded").GetBoolean());
            // The cache's size is what its index holds: the layer left it once, and finding it again is no new content.
            await Eventually.TrueAsync(async () => (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_size_bytes") == cached - layer.Size,
                TimeSpan.FromSeconds(5), $"the cache size is {cached} - {layer.Size} bytes");

            // The disk takes changes again: the next look at the layer moves the damaged file aside.
            await disk.RecoverAsync(cts.Token);
            await AssertServedWholeAsync(mirror, _cached, layer, "after the remount", cts.Token);
            Assert.False(File.Exists(file), "the damaged file was moved aside once the disk allowed it");
            await mirror.Output.WaitForLineAsync(line => line.Text.Contains("is moved aside now", StringComparison.Ordinal), TimeSpan.FromSeconds(5), cts.Token);
            Assert.Equal(1, (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_quarantined_total"));
        }
        finally
        {
            await mirror.DisposeAsync();
        }
    }

    private const int ManyTags = 2000;

    /// <summary>Tags the cached image <see cref="ManyTags"/> times upstream (t0, t1...): each is a new index record when first pulled.</summary>
    private Task PushManyTagsAsync(CancellationToken cancellationToken) =>
        Parallel.ForAsync(0, ManyTags, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (i, token) =>
            await OciImageFactory.PushManifestAsync(_registry.BaseUri, _cached.Repository, $"t{i}", _cached.MediaType, _cached.ManifestBytes, credentials: null, token));

    /// <summary>Pulls every tag <see cref="PushManyTagsAsync"/> made, 8 at a time, each given 10 s; returns how many did not answer 200 with the manifest.</summary>
    private async Task<int> PullManyTagsAsync(MirrorProcess mirror, CancellationToken cancellationToken)
    {
        var failures = 0;
        await Parallel.ForAsync(0, ManyTags, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (i, token) =>
        {
            using var each = CancellationTokenSource.CreateLinkedTokenSource(token);
            each.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                using var tag = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{_cached.Repository}/manifests/t{i}", each.Token);
                var body = await tag.Content.ReadAsByteArrayAsync(each.Token);
                if (tag.StatusCode != HttpStatusCode.OK || !_cached.ManifestBytes.SequenceEqual(body))
                {
                    Interlocked.Increment(ref failures);
                }
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                Interlocked.Increment(ref failures);
            }
        });
        return failures;
    }

    /// <summary>Readiness stays 200, says degraded, and names the index among its warnings.</summary>
    private static async Task AssertIndexReportedNotWritableAsync(MirrorProcess mirror)
    {
        var (status, ready) = await FaultSupport.ReadyzAsync(mirror.Client);
        Assert.Equal((200, "degraded"), (status, ready.GetProperty("status").GetString()));
        Assert.True(ready.GetProperty("warnings").EnumerateArray().Any(w => w.GetString()!.Contains("cache index", StringComparison.Ordinal)),
            $"{ready}\n{mirror.Output.Tail(30)}");
    }

    private static async Task AssertServedWholeAsync(MirrorProcess mirror, TestImage image, OciBlob blob, string what, CancellationToken cancellationToken)
    {
        using var response = await mirror.Client.GetAsync(BlobUrl(image, blob), cancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK,
            $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}\n{mirror.Output.Tail(20)}");
        Assert.Equal(blob.Content, await response.Content.ReadAsByteArrayAsync(cancellationToken));
    }

    private static string TagUrl(TestImage image) => $"/v2/{image.Repository}/manifests/{image.Tag}";

    private static string BlobUrl(TestImage image, OciBlob blob) => $"/v2/{image.Repository}/blobs/{blob.Digest}";

    private static async Task PullAsync(MirrorProcess mirror, TestImage image)
    {
        using (var tag = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl(image)))
        {
            Assert.Equal(image.ManifestBytes, await tag.Content.ReadAsByteArrayAsync());
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync(BlobUrl(image, blob)));
        }
    }

    /// <summary>
    /// The disk under the cache and how it fails. For read-only and EIO the index directory is bind-mounted from a
    /// healthy disk: FASTER keeps its log files open for writing, and the kernel refuses a read-only remount under a
    /// file open for writing, and keeps a shut-down ext4 alive (failed) while files on it are open, so the disk could
    /// not come back under a running mirror. A full disk holds the index too.
    /// </summary>
    private sealed class CacheDisk : IAsyncDisposable
    {
        private readonly string _fault;
        private readonly TmpfsDisk? _tmpfs;
        private readonly FailingDisk? _failing;
        private readonly string? _boundIndex;

        private CacheDisk(string fault, TmpfsDisk? tmpfs, FailingDisk? failing, string cache, string? boundIndex)
        {
            _fault = fault;
            _tmpfs = tmpfs;
            _failing = failing;
            Cache = cache;
            _boundIndex = boundIndex;
        }

        public string Cache { get; }

        public static async Task<CacheDisk> MountAsync(string fault, TempDirectory work, CancellationToken cancellationToken)
        {
            TmpfsDisk? tmpfs = null;
            FailingDisk? failing = null;
            if (fault == "eio")
            {
                failing = await FailingDisk.MountAsync(DiskSize, cancellationToken);
            }
            else
            {
                tmpfs = await TmpfsDisk.MountAsync(DiskSize, cancellationToken);
            }

            var cache = Path.Combine(tmpfs?.Path ?? failing!.Path, "cache");
            string? boundIndex = null;
            if (fault != "full")
            {
                boundIndex = Path.Combine(cache, "index");
                var healthy = work.Combine($"index-{fault}");
                Directory.CreateDirectory(healthy);
                Directory.CreateDirectory(boundIndex);
                await SystemCommand.RunAsync("mount", ["--bind", healthy, boundIndex], cancellationToken);
            }

            return new CacheDisk(fault, tmpfs, failing, cache, boundIndex);
        }

        public async Task FailAsync(CancellationToken cancellationToken)
        {
            switch (_fault)
            {
                case "full":
                    await _tmpfs!.FillAsync(cancellationToken: cancellationToken);
                    break;
                case "read-only":
                    await _tmpfs!.RemountReadOnlyAsync(cancellationToken);
                    break;
                default:
                    await _failing!.FailAsync(cancellationToken);
                    break;
            }
        }

        public async Task RecoverAsync(CancellationToken cancellationToken)
        {
            switch (_fault)
            {
                case "full":
                    _tmpfs!.DeleteFill();
                    break;
                case "read-only":
                    await _tmpfs!.RemountReadWriteAsync(cancellationToken);
                    break;
                default:
                    await _failing!.RecoverAsync(cancellationToken);
                    break;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_boundIndex is not null)
            {
                await DiskLeftovers.UnmountAsync(_boundIndex, CancellationToken.None);
            }

            if (_tmpfs is not null)
            {
                await _tmpfs.DisposeAsync();
            }

            if (_failing is not null)
            {
                await _failing.DisposeAsync();
            }
        }
    }
}
