using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Common;

namespace MirrorProxy.Tests.Common;

public sealed class BackgroundWorkTests
{
    [Fact]
    public async Task Stop_CancelsRunningWorkAndWaitsForItToEnd()
    {
        using var work = new BackgroundWork(NullLogger<BackgroundWork>.Instance);
        var cleanedUp = false;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = work.Run("long", async (_, ct) =>
        {
            started.SetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            finally
            {
                await Task.Delay(50, CancellationToken.None);
                cleanedUp = true;
            }
        }, 0);
        await started.Task;
        Assert.Equal(1, work.Count);

        await work.StopAsync(CancellationToken.None);

        Assert.True(cleanedUp);
        Assert.Equal(0, work.Count);
    }

    [Fact]
    public async Task Run_FailingWork_IsLoggedNotThrown_AndLeavesNothingBehind()
    {
        using var work = new BackgroundWork(NullLogger<BackgroundWork>.Instance);

        await work.Run("failing", static (_, _) => Task.FromException(new InvalidOperationException("boom")), 0);

        Assert.Equal(0, work.Count);
    }

    [Fact]
    public async Task Run_ManyShortPieces_LeaveNoEntries()
    {
        using var work = new BackgroundWork(NullLogger<BackgroundWork>.Instance);

        await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => work.Run("short", static (_, _) => Task.CompletedTask, i)));

        Assert.Equal(0, work.Count);
    }
}
