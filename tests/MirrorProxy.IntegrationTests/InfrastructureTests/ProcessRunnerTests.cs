using System.Diagnostics;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

public sealed class ProcessRunnerTests
{
    [Fact]
    public async Task CapturesExitCodeStdoutAndStderr()
    {
        var result = await ProcessRunner.RunAsync("sh", ["-c", "printf 'out\\n'; echo err >&2; exit 3"], TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.False(result.TimedOut);
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("out\n", result.StandardOutput);
        Assert.Equal("err\n", result.StandardError);
        Assert.Throws<InvalidOperationException>(() => result.EnsureSuccess());
    }

    [Fact]
    public async Task TimeoutKillsTheWholeProcessTree()
    {
        // The backgrounded grandchild keeps the pipes open: only a tree kill lets this return quickly.
        var stopwatch = Stopwatch.StartNew();
        var result = await ProcessRunner.RunAsync("sh", ["-c", "sleep 30 & echo started; sleep 30"], TimeSpan.FromMilliseconds(500), CancellationToken.None);
        Assert.True(result.TimedOut);
        Assert.Equal(-1, result.ExitCode);
        Assert.Equal("started\n", result.StandardOutput);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public async Task LongRunningProcessOutputIsCaptured()
    {
        await using var process = ProcessRunner.Start("sh", ["-c", "echo hello; echo oops >&2; sleep 30"]);
        var line = await process.Output.WaitForLineAsync(l => l.Text == "oops", TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.Equal(OutputSource.StandardError, line.Source);
        await process.Output.WaitForLineAsync(l => l.Text == "hello", TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.False(process.HasExited);
        await process.KillAsync();
        Assert.True(process.HasExited);
    }
}
