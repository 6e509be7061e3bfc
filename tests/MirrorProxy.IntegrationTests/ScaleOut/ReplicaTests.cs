using System.Globalization;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using MirrorProxy.Coordination;
using MirrorProxy.IntegrationTests.Faults;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;
using MirrorProxy.IntegrationTests.Support;
using MirrorProxy.Metrics;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.ScaleOut;

/// <summary>
/// Three real mirror processes sharing a real Ceph RGW bucket and coordinating through a real Garnet, in front of a
/// real distribution registry (behind a proxy that counts what reaches it and can slow it down).
/// </summary>
[Collection(ScaleOutCollection.Name)]
public sealed class ReplicaTests : IAsyncLifetime
{
    private readonly ScaleOutEngines _engines;
    private readonly ITestOutputHelper _output;
    private TestRegistry? _registry;
    private FaultProxy? _upstream;

    public ReplicaTests(ScaleOutEngines engines, ITestOutputHelper output)
    {
        _engines = engines;
        _output = output;
    }

    private TestRegistry Registry => _registry!;

    private FaultProxy Upstream => _upstream!;

    public async Task InitializeAsync()
    {
        _output.WriteLine(_engines.StartupReport);
        _registry = await TestRegistry.StartAsync();
        _upstream = await FaultProxy.StartAsync(_registry.BaseUri);
    }

    public async Task DisposeAsync()
    {
        await _upstream!.DisposeAsync();
        await _registry!.DisposeAsync();
    }

    [Fact]
    public async Task SixteenColdRequests_OverThreeReplicas_MakeOneUpstreamGet_AndEveryoneGetsTheBytes()
    {
        var image = await OciImageFactory.PushLargeBlobImageAsync(Registry, "scale/cold", "1", "cold", 8L * 1024 * 1024);
        var layer = image.Blobs.OrderByDescending(b => b.Size).First().Digest;
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "cold", _output);

        var watch = Stopwatch.StartNew();
        var pulls = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => ReplicaSet.PullBlobAsync(replicas[i % 3], "scale/cold", layer)));
        _output.WriteLine($"16 cold pulls of 8 MiB over 3 replicas: {watch.ElapsedMilliseconds} ms");

        Assert.All(pulls, pull => Assert.True(pull.Ok, pull.Outcome));
        Assert.Equal(1, Upstream.Count("GET", "/blobs/" + layer));
    }

    [Fact]
    public async Task ABlobFetchedThroughOneReplica_IsServedByAnother_WithoutTheUpstream()
    {
        var image = await OciImageFactory.PushDockerImageAsync(Registry, "scale/shared", "1", "shared");
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "shared", _output);
        using var first = await replicas[0].Client.GetAsync("/v2/scale/shared/manifests/1");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        foreach (var blob in image.Blobs)
        {
            var pull = await ReplicaSet.PullBlobAsync(replicas[0], "scale/shared", blob.Digest);
            Assert.True(pull.Ok, pull.Outcome);
        }

        var upstreamBefore = Upstream.Requests;
        foreach (var other in new[] { replicas[1], replicas[2] })
        {
            using var manifest = await other.Client.GetAsync("/v2/scale/shared/manifests/1");
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            Assert.Equal(image.Digest, manifest.Headers.GetValues("Docker-Content-Digest").Single());
            foreach (var blob in image.Blobs)
            {
                var pull = await ReplicaSet.PullBlobAsync(other, "scale/shared", blob.Digest);
                Assert.True(pull.Ok, pull.Outcome);
            }
        }

        // The tag came from the shared record, the manifest and blobs from the bucket: nothing reached the upstream.
        Assert.Equal(upstreamBefore, Upstream.Requests);
        foreach (var blob in image.Blobs)
        {
            Assert.Equal(1, Upstream.Count("GET", "/blobs/" + blob.Digest));
        }
    }

    [Fact]
    public async Task KillingTheLeaseHolderMidDownload_AnotherReplicaCompletesIt()
    {
        var image = await OciImageFactory.PushLargeBlobImageAsync(Registry, "scale/takeover", "1", "takeover", 6L * 1024 * 1024);
        var layer = image.Blobs.OrderByDescending(b => b.Size).First().Digest;
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "takeover", _output, new ReplicaSettings { LeaseDuration = TimeSpan.FromSeconds(4) });
        using var redis = await _engines.Garnet.ConnectAsync();
        var lease = (RedisKey)(replicas.KeyPrefix + "lease:blob:" + layer);

        // 6 MiB at 1 MiB/s: the holder is mid-download for seconds.
        Upstream.BytesPerSecond = 1024 * 1024;
        var holderPull = ReplicaSet.PullBlobAsync(replicas[0], "scale/takeover", layer);
        await Eventually.TrueAsync(async () => await redis.GetDatabase().KeyExistsAsync(lease), TimeSpan.FromSeconds(30), "replica 0 never took the blob's lease");
        var waiters = new[] { ReplicaSet.PullBlobAsync(replicas[1], "scale/takeover", layer), ReplicaSet.PullBlobAsync(replicas[2], "scale/takeover", layer) };
        await Task.Delay(TimeSpan.FromSeconds(1));
        Upstream.BytesPerSecond = 0;

        await replicas[0].KillAsync();
        var watch = Stopwatch.StartNew();
        var holder = await holderPull;
        var taken = await Task.WhenAll(waiters);
        _output.WriteLine($"client of the killed holder: {holder.Outcome}; waiters done {watch.ElapsedMilliseconds} ms after the kill");

        // The holder's client got the right bytes or a clean error, never wrong bytes; the waiters got the blob.
        Assert.True(holder.Ok || !holder.Outcome.StartsWith("wrong bytes", StringComparison.Ordinal), holder.Outcome);
        Assert.All(taken, pull => Assert.True(pull.Ok, pull.Outcome));
        Assert.Equal(2, Upstream.Count("GET", "/blobs/" + layer));
    }

    [Fact]
    public async Task ADownloadLongerThanItsLease_KeepsTheLease_AndNobodyTakesOver()
    {
        var image = await OciImageFactory.PushLargeBlobImageAsync(Registry, "scale/long", "1", "long", 4L * 1024 * 1024);
        var layer = image.Blobs.OrderByDescending(b => b.Size).First().Digest;
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "long", _output, new ReplicaSettings { LeaseDuration = TimeSpan.FromSeconds(4) });

        // 4 MiB at 512 KiB/s: about 8 s, two lease durations; the holder renews, the others keep waiting.
        Upstream.BytesPerSecond = 512 * 1024;
        var pulls = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => ReplicaSet.PullBlobAsync(replicas[i], "scale/long", layer)));

        Assert.All(pulls, pull => Assert.True(pull.Ok, pull.Outcome));
        Assert.Equal(1, Upstream.Count("GET", "/blobs/" + layer));
    }

    [Fact]
    public async Task FlushAllOfTheCoordinationStore_CommittedContentIsStillServed()
    {
        var image = await OciImageFactory.PushDockerImageAsync(Registry, "scale/flush", "1", "flush");
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "flush", _output);
        using var s3 = _engines.CreateS3Client();
        foreach (var blob in image.Blobs)
        {
            Assert.True((await ReplicaSet.PullBlobAsync(replicas[0], "scale/flush", blob.Digest)).Ok);
            await Eventually.TrueAsync(async () => (await s3.HeadObjectAsync(replicas.Bucket, "blobs/" + blob.Digest.Replace(':', '/'))).Status == HttpStatusCode.OK,
                TimeSpan.FromSeconds(30), $"{blob.Digest} never reached the bucket");
        }

        await _engines.Garnet.FlushAllAsync();

        foreach (var other in new[] { replicas[1], replicas[2] })
        {
            foreach (var blob in image.Blobs)
            {
                var pull = await ReplicaSet.PullBlobAsync(other, "scale/flush", blob.Digest);
                Assert.True(pull.Ok, pull.Outcome);
            }
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(1, Upstream.Count("GET", "/blobs/" + blob.Digest));
        }
    }

    [Fact]
    public async Task ACoordinationStoreThatHangs_CostsItsTimeoutOncePerHoldDown_NotPerRequest()
    {
        // The store is stopped (SIGSTOP), not closed: connections stay up and nothing answers, as with a hung host.
        var cached = await OciImageFactory.PushDockerImageAsync(Registry, "scale/hung", "1", "hung-cached");
        var cold = await OciImageFactory.PushDockerImageAsync(Registry, "scale/hung", "2", "hung-cold");
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "hung", _output, new ReplicaSettings { Count = 1 });
        var mirror = replicas[0];
        foreach (var blob in cached.Blobs)
        {
            Assert.True((await ReplicaSet.PullBlobAsync(mirror, "scale/hung", blob.Digest)).Ok);
        }

        // A lease is released once its blob is in the bucket: none may still be on its way to the store when it stops.
        using (var redis = await _engines.Garnet.ConnectAsync())
        {
            var server = redis.GetServer(_engines.Garnet.EndPoint);
            await Eventually.TrueAsync(async () =>
            {
                await foreach (var _ in server.KeysAsync(pattern: replicas.KeyPrefix + "lease:*"))
                {
                    return false;
                }

                return true;
            }, TimeSpan.FromSeconds(30), "the warm-up's leases were never released");
        }

        var before = await FaultSupport.ScrapeAsync(mirror.Client);
        var pid = _engines.Garnet.ProcessId ?? throw new InvalidOperationException("garnet-server is not running");
        Assert.Equal(0, (await ProcessRunner.RunAsync("kill", ["-STOP", pid.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), CancellationToken.None)).ExitCode);
        var hung = Stopwatch.StartNew();
        PrometheusText after;
        try
        {
            foreach (var blob in cold.Blobs.Concat(cached.Blobs))
            {
                var watch = Stopwatch.StartNew();
                var pull = await ReplicaSet.PullBlobAsync(mirror, "scale/hung", blob.Digest);
                _output.WriteLine($"{blob.Digest[..19]} with the store hung: {watch.ElapsedMilliseconds} ms");
                Assert.True(pull.Ok, pull.Outcome);
                // Waiting for the store costs a request at most its timeout (1 s): none waits as long as a hold-down.
                Assert.True(watch.Elapsed < RedisCoordination.HoldDown, $"{blob.Digest} took {watch.ElapsedMilliseconds} ms with the store hung");
            }

            hung.Stop();
            after = await FaultSupport.ScrapeAsync(mirror.Client);
        }
        finally
        {
            await ProcessRunner.RunAsync("kill", ["-CONT", pid.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), CancellationToken.None);
        }

        double Calls(PrometheusText metrics, string outcome) => metrics.Sum("mirrorproxy_coordination_calls_total", ("outcome", outcome));
        var unanswered = Calls(after, CoordinationOutcomes.Unanswered) - Calls(before, CoordinationOutcomes.Unanswered);
        var heldDown = Calls(after, CoordinationOutcomes.HeldDown) - Calls(before, CoordinationOutcomes.HeldDown);
        var holdDowns = 1 + (int)(hung.Elapsed / RedisCoordination.HoldDown);
        _output.WriteLine($"{hung.ElapsedMilliseconds} ms with the store hung: {unanswered} calls waited for it, {heldDown} did not ask it");

        // Each cold blob asked for its lease; the first call waited for the store, the others within the hold-down did not ask.
        Assert.InRange(unanswered, 1, holdDowns);
        Assert.True(unanswered + heldDown >= cold.Blobs.Count, $"{unanswered} + {heldDown} calls for {cold.Blobs.Count} cold blobs");
        Assert.True(heldDown >= cold.Blobs.Count - holdDowns, $"only {heldDown} of {cold.Blobs.Count} lease requests were spared the wait");
        foreach (var blob in cold.Blobs)
        {
            Assert.Equal(1, Upstream.Count("GET", "/blobs/" + blob.Digest));
        }
    }

    [Fact]
    public async Task TheSharedBucket_IsKeptWithinItsBudget_AndPinnedContentStays()
    {
        var images = new List<TestImage>();
        foreach (var name in new[] { "a", "b", "c" })
        {
            images.Add(await OciImageFactory.PushLargeBlobImageAsync(Registry, "scale/evict", name, "evict-" + name, 1536 * 1024));
        }

        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "evict", _output,
            new ReplicaSettings { MaxSharedSize = "3MiB", SharedEvictionInterval = TimeSpan.FromSeconds(2) });
        using var s3 = _engines.CreateS3Client();
        for (var i = 0; i < images.Count; i++)
        {
            using (var manifest = await replicas[i].Client.GetAsync($"/v2/scale/evict/manifests/{images[i].Tag}"))
            {
                Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            }

            foreach (var blob in images[i].Blobs)
            {
                Assert.True((await ReplicaSet.PullBlobAsync(replicas[i], "scale/evict", blob.Digest)).Ok);
            }

            if (i == 0)
            {
                // Pinned through one replica: the leader, whichever it is, must not evict it.
                using var pin = await replicas[1].Client.PutAsync("/admin/pins/keep",
                    new StringContent("{\"images\":[\"docker.io/scale/evict:a\"]}", System.Text.Encoding.UTF8, "application/json"));
                Assert.Equal(HttpStatusCode.OK, pin.StatusCode);
            }
        }

        var pinnedLayer = images[0].Blobs.OrderByDescending(b => b.Size).First().Digest;
        long total = 0;
        var listing = "";
        try
        {
            await Eventually.TrueAsync(async () =>
        {
            total = 0;
            listing = "";
            foreach (var key in await s3.ListKeysAsync(replicas.Bucket, "blobs/"))
            {
                var size = long.Parse((await s3.HeadObjectAsync(replicas.Bucket, key)).Header("Content-Length")!, System.Globalization.CultureInfo.InvariantCulture);
                total += size;
                listing += $"{key} {size}; ";
            }

            return total <= 3L * 1024 * 1024;
        }, TimeSpan.FromSeconds(60), "the bucket never came within its budget");
        }
        finally
        {
            _output.WriteLine("bucket: " + listing);
        }

        _output.WriteLine($"bucket holds {total} bytes after eviction");
        Assert.Equal(HttpStatusCode.OK, (await s3.HeadObjectAsync(replicas.Bucket, "blobs/" + pinnedLayer.Replace(':', '/'))).Status);
        // Each node keeps its own copies: what was evicted from the bucket is still served by the node that holds it.
        foreach (var blob in images[1].Blobs)
        {
            Assert.True((await ReplicaSet.PullBlobAsync(replicas[1], "scale/evict", blob.Digest)).Ok);
        }
    }

    [Fact]
    public async Task ATagMovedUpstream_EveryReplicaServesTheNewDigest_WithinTheTtl()
    {
        var ttl = TimeSpan.FromSeconds(3);
        var old = await OciImageFactory.PushDockerImageAsync(Registry, "scale/moving", "latest", "before");
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "moving", _output, new ReplicaSettings { TagTtl = ttl });
        foreach (var replica in replicas.Replicas)
        {
            Assert.Equal(old.Digest, await DigestOfAsync(replica));
        }

        var moved = await OciImageFactory.PushDockerImageAsync(Registry, "scale/moving", "latest", "after");
        var watch = Stopwatch.StartNew();
        var seen = new TimeSpan?[replicas.Replicas.Count];
        while (watch.Elapsed < ttl + TimeSpan.FromSeconds(5) && seen.Any(s => s is null))
        {
            for (var i = 0; i < seen.Length; i++)
            {
                if (seen[i] is null && await DigestOfAsync(replicas[i]) == moved.Digest)
                {
                    seen[i] = watch.Elapsed;
                }
            }

            await Task.Delay(100);
        }

        _output.WriteLine("new digest seen after: " + string.Join(", ", seen.Select(s => s is { } t ? $"{t.TotalMilliseconds:0} ms" : "never")));
        // Within the TTL, plus the time one revalidation takes (the bound is generous for two loaded cores).
        Assert.All(seen, s => Assert.True(s is { } t && t <= ttl + TimeSpan.FromSeconds(2), $"seen after {s}"));

        static async Task<string?> DigestOfAsync(MirrorProcess replica)
        {
            using var response = await replica.Client.GetAsync("/v2/scale/moving/manifests/latest");
            return response.IsSuccessStatusCode ? response.Headers.GetValues("Docker-Content-Digest").Single() : null;
        }
    }

    [Fact]
    public async Task TheS3EndpointDown_TheLocalReadCacheServesWhatItHolds_AndReadinessTells()
    {
        var image = await OciImageFactory.PushDockerImageAsync(Registry, "scale/s3down", "1", "s3down");
        var uncached = await OciImageFactory.PushDockerImageAsync(Registry, "scale/s3down", "2", "s3down-later");
        await using var replicas = await ReplicaSet.StartAsync(_engines, Upstream.BaseUri, "s3down", _output, new ReplicaSettings { Count = 1 });
        var mirror = replicas[0];
        using (var manifest = await mirror.Client.GetAsync("/v2/scale/s3down/manifests/1"))
        {
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
        }

        foreach (var blob in image.Blobs)
        {
            Assert.True((await ReplicaSet.PullBlobAsync(mirror, "scale/s3down", blob.Digest)).Ok);
        }

        await _engines.Rgw.StopRgwAsync();
        try
        {
            foreach (var blob in image.Blobs)
            {
                var pull = await ReplicaSet.PullBlobAsync(mirror, "scale/s3down", blob.Digest);
                Assert.True(pull.Ok, pull.Outcome);
            }

            // New content still comes from the upstream (it is not shared until the store is back).
            var later = await ReplicaSet.PullBlobAsync(mirror, "scale/s3down", uncached.Blobs.First().Digest);
            Assert.True(later.Ok, later.Outcome);

            using var ready = await mirror.Client.GetAsync("/readyz");
            var report = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Equal("degraded", report.GetProperty("status").GetString());
            Assert.Equal("unreachable", report.GetProperty("sharedStore").GetString());
            Assert.Contains(report.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("shared store", StringComparison.Ordinal));
        }
        finally
        {
            await _engines.Rgw.StartRgwAsync();
        }

        await Eventually.TrueAsync(async () =>
        {
            using var ready = await mirror.Client.GetAsync("/readyz");
            return JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("sharedStore").GetString() == "ok";
        }, TimeSpan.FromSeconds(30), "readiness never saw the shared store back");
    }
}
