using System.Text.RegularExpressions;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;

namespace MirrorProxy.IntegrationTests.Engines;

/// <summary>A cluster that cannot come up says which step failed and shows the daemons' logs, and leaves nothing running.</summary>
[Collection(ScaleOutCollection.Name)]
public sealed class CephRgwStartFailureTests
{
    [Fact]
    public async Task OsdTooSmall_FailsNamingTheStep_WithLogTails_AndStopsTheMonitor()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var options = new CephRgwOptions { OsdSizeBytes = 1024 * 1024, Attempts = 1 };

        var failure = await Assert.ThrowsAsync<EngineStartException>(() => CephRgw.StartAsync(options, cts.Token));

        Assert.Contains("in 1 attempt(s)", failure.Message, StringComparison.Ordinal);
        Assert.Contains("step 'osd' failed", failure.Message, StringComparison.Ordinal);
        Assert.Contains("ceph-osd -c ", failure.Message, StringComparison.Ordinal);
        Assert.Contains("--mkfs", failure.Message, StringComparison.Ordinal);
        Assert.Contains("--- mon.a (pid ", failure.Message, StringComparison.Ordinal);
        var directory = Regex.Match(failure.Message, @"attempt 1 \((?<directory>[^)]+)\)").Groups["directory"].Value;
        Assert.StartsWith(EngineLeftovers.BaseDirectory + "/mirrorproxy-test-ceph-", directory, StringComparison.Ordinal);
        Assert.False(Directory.Exists(directory), $"{directory} is left after a failed start");
        var pid = int.Parse(failure.Message.Split("--- mon.a (pid ")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(Directory.Exists($"/proc/{pid}") && File.ReadAllText($"/proc/{pid}/comm").Trim() == "ceph-mon", $"ceph-mon (pid {pid}) still runs after a failed start");
    }
}
