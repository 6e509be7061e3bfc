using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Load;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>The latency recorder's arithmetic, and background load against a hostile registry.</summary>
public sealed class LoadTests
{
    [Fact]
    public void LatencyRecorder_GivesNearestRankPercentiles()
    {
        var recorder = new LatencyRecorder(capacity: 200);
        foreach (var milliseconds in Enumerable.Range(1, 200).Reverse())
        {
            recorder.Record(TimeSpan.FromMilliseconds(milliseconds));
        }

        Assert.Equal(TimeSpan.FromMilliseconds(100), recorder.P50);
        Assert.Equal(TimeSpan.FromMilliseconds(198), recorder.P99);
        Assert.Equal(TimeSpan.FromMilliseconds(200), recorder.Max);
        Assert.Equal(TimeSpan.FromMilliseconds(2), recorder.Percentile(1));
        Assert.Equal(new LatencySummary(200, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(198), TimeSpan.FromMilliseconds(200)), recorder.Summarize());
        Assert.Throws<InvalidOperationException>(() => recorder.Record(TimeSpan.Zero));
        Assert.Throws<InvalidOperationException>(() => new LatencyRecorder().Percentile(50));
        Assert.Equal(default, new LatencyRecorder().Summarize());
    }

    [Fact]
    public async Task LatencyRecorder_MeasuresFailuresToo()
    {
        var recorder = new LatencyRecorder(capacity: 2);

        Assert.Equal(42, await recorder.MeasureAsync(() => Task.FromResult(42)));
        await Assert.ThrowsAsync<TimeoutException>(() => recorder.MeasureAsync<int>(() => throw new TimeoutException()));

        Assert.Equal(2, recorder.Count);
    }

    [Fact]
    public async Task BackgroundLoad_ReachesAHundredSuccessesInThirtySeconds_CountsFailures_AndStopsAtItsBound()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var image = OciImageFactory.BuildHelmChart("load/chart", "1.0.0", "load");
        await using var upstream = await HostileRegistry.StartAsync(image);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
        var url = new Uri(upstream.BaseUri, $"v2/{image.Repository}/manifests/{image.Tag}");

        var options = new BackgroundLoadOptions { MaxRequests = 400, Interval = TimeSpan.FromMilliseconds(5), Concurrency = 2, RequestTimeout = TimeSpan.FromSeconds(1) };
        await using (var load = BackgroundLoad.Start(client, url, options))
        {
            await load.WaitForSuccessesAsync(100, TimeSpan.FromSeconds(30), cancellationToken: cts.Token);
            Assert.True(load.SucceededWithin(TimeSpan.FromSeconds(30)) >= 100);

            upstream.Set(HostileEndpoints.TagManifestGet, HostileBehavior.Status(503));
            var before = load.Failed;
            await Eventually.TrueAsync(() => load.Failed >= before + 10, TimeSpan.FromSeconds(30), "503s are counted as failures");
            Assert.True(load.Failures["503"] >= 10, load.ToString());

            upstream.Set(HostileEndpoints.TagManifestGet, HostileBehavior.Hang);
            await Eventually.TrueAsync(() => load.Failures.ContainsKey("timeout"), TimeSpan.FromSeconds(30), "a hung request counts as a timeout");
            upstream.Heal();

            // Bounded in count: it stops by itself.
            await load.Completion.WaitAsync(cts.Token);
            Assert.Equal(400, load.Succeeded + load.Failed);
            Assert.Equal(400, load.Latencies.Count);
            Assert.True(load.Latencies.Max > TimeSpan.Zero, load.ToString());
        }

        // Bounded in time: it stops by itself, and StopAsync ends what is in flight at once.
        upstream.Set(HostileEndpoints.TagManifestGet, HostileBehavior.Hang);
        await using (var hung = BackgroundLoad.Start(client, url, new BackgroundLoadOptions { MaxDuration = TimeSpan.FromSeconds(1) }))
        {
            await hung.Completion.WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
            Assert.Equal(0, hung.Succeeded);
            Assert.Equal(0, hung.Failed);
        }

        await using var stopped = BackgroundLoad.Start(client, url, new BackgroundLoadOptions { RequestTimeout = TimeSpan.FromMinutes(5) });
        await stopped.StopAsync().WaitAsync(TimeSpan.FromSeconds(10), cts.Token);
        await Assert.ThrowsAsync<TimeoutException>(() => stopped.WaitForSuccessesAsync(1, cancellationToken: cts.Token));
    }
}
