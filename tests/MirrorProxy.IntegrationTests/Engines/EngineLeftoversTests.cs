using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;

namespace MirrorProxy.IntegrationTests.Engines;

public sealed class EngineLeftoversTests
{
    [Fact]
    public void LeftoverDirectory_OnlyForEngineDirectoriesOfDeadRuns()
    {
        var root = EngineLeftovers.BaseDirectory + "/";
        var dead = $"{root}{TestRunNames.Prefix}{CephRgw.NameKind}-{Environment.ProcessId}-1-1";
        var deadGarnet = $"{root}{TestRunNames.Prefix}{GarnetServer.NameKind}-{Environment.ProcessId}-1-3";
        var live = $"{root}{TestRunNames.Prefix}{CephRgw.NameKind}-{TestRunNames.Run}-{int.MaxValue}";
        var otherKind = $"{root}{TestRunNames.Prefix}tmpfs-{Environment.ProcessId}-1-1";

        Assert.Equal(dead, EngineLeftovers.LeftoverDirectory(dead + "/ceph.conf"));
        Assert.Equal(deadGarnet, EngineLeftovers.LeftoverDirectory(deadGarnet + "/checkpoints"));
        Assert.Equal(dead, EngineLeftovers.LeftoverDirectory(dead));
        Assert.Null(EngineLeftovers.LeftoverDirectory(live + "/ceph.conf"));
        Assert.Null(EngineLeftovers.LeftoverDirectory(otherKind));
        Assert.Null(EngineLeftovers.LeftoverDirectory("/etc/ceph/ceph.conf"));
    }
}
