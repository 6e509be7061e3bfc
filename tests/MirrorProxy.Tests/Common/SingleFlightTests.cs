using MirrorProxy.Common;

namespace MirrorProxy.Tests.Common;

public sealed class SingleFlightTests
{
    [Fact]
    public async Task RunAsync_ConcurrentCallersOfOneKey_ShareOneRun()
    {
        var flight = new SingleFlight<int>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runs = 0;

        var callers = Enumerable.Range(0, 10).Select(_ => flight.RunAsync("k", async _ =>
        {
            Interlocked.Increment(ref runs);
            await gate.Task;
            return 42;
        }, 0, CancellationToken.None)).ToList();
        gate.SetResult();

        Assert.All(await Task.WhenAll(callers), r => Assert.Equal(42, r));
        Assert.Equal(1, runs);
    }

    [Fact]
    public async Task RunAsync_AfterTheRunEnded_ANewCallerStartsAFreshOne()
    {
        var flight = new SingleFlight<int>();
        var runs = 0;

        Assert.Equal(1, await flight.RunAsync("k", _ => Task.FromResult(Interlocked.Increment(ref runs)), 0, CancellationToken.None));
        for (var i = 0; i < 100 && runs < 2; i++)
        {
            if (await flight.RunAsync("k", _ => Task.FromResult(Interlocked.Increment(ref runs)), 0, CancellationToken.None) == 2)
            {
                break;
            }

            await Task.Delay(10);
        }

        Assert.Equal(2, runs);
    }

    [Fact]
    public async Task RunAsync_WaiterCancelled_TheRunGoesOnForTheOthers()
    {
        var flight = new SingleFlight<int>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cancelled = new CancellationTokenSource();
        Func<int, Task<int>> work = async _ =>
        {
            await gate.Task;
            return 7;
        };

        var leaving = flight.RunAsync("k", work, 0, cancelled.Token);
        var staying = flight.RunAsync("k", work, 0, CancellationToken.None);
        await cancelled.CancelAsync();
        gate.SetResult();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
        Assert.Equal(7, await staying);
    }

    [Fact]
    public async Task RunAsync_DifferentKeys_RunSeparately()
    {
        var flight = new SingleFlight<string>();

        var a = flight.RunAsync("a", k => Task.FromResult(k), "a", CancellationToken.None);
        var b = flight.RunAsync("b", k => Task.FromResult(k), "b", CancellationToken.None);

        Assert.Equal(["a", "b"], await Task.WhenAll(a, b));
    }
}
