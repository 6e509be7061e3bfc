using MirrorProxy.Status;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Status;

public sealed class PullFailureLogTests
{
    [Fact]
    public void Record_KeepsTheLastFiftyNewestFirst_WithBoundedText()
    {
        var log = new PullFailureLog(TestMetrics.Create(), TimeProvider.System);

        for (var i = 0; i < 120; i++)
        {
            log.Record("docker.io", "library/app", $"tag-{i}", 503, new string('x', 10_000));
        }

        var recent = log.Recent();
        Assert.Equal(PullFailureLog.Capacity, recent.Count);
        Assert.Equal(120, log.Total);
        Assert.Equal("tag-119", recent[0].Reference);
        Assert.Equal("tag-70", recent[^1].Reference);
        Assert.All(recent, f => Assert.True(f.Message.Length <= 256));
    }
}
