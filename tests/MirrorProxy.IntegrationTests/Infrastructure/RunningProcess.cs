using System.Diagnostics;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>A long-running child process whose output lines are captured into an <see cref="OutputBuffer"/>.</summary>
internal sealed class RunningProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    private RunningProcess(Process process, string commandLine, OutputBuffer output)
    {
        _process = process;
        CommandLine = commandLine;
        Output = output;
    }

    public string CommandLine { get; }

    public OutputBuffer Output { get; }

    public int Id { get; private set; }

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Completes with the exit code when the process exits.</summary>
    public Task<int> Exited => _exited.Task;

    internal static RunningProcess Start(ProcessStartInfo startInfo, string commandLine, OutputBuffer output)
    {
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var running = new RunningProcess(process, commandLine, output);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.Append(OutputSource.StandardOutput, e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.Append(OutputSource.StandardError, e.Data);
            }
        };
        process.Exited += (_, _) => running.OnExited();

        if (!process.Start())
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start `{commandLine}`.");
        }

        running.Id = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (process.HasExited)
        {
            running.OnExited();
        }

        return running;
    }

    /// <summary>Kills the process tree (SIGKILL) and waits (bounded) until it has exited.</summary>
    public async Task KillAsync(CancellationToken cancellationToken = default)
    {
        ProcessRunner.KillTree(_process);
        await WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends SIGTERM, waits up to <paramref name="gracePeriod"/>, then kills the tree.</summary>
    public async Task StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken = default)
    {
        if (HasExited)
        {
            return;
        }

        NativeSignals.Send(Id, NativeSignals.SigTerm);
        if (!await WaitForExitAsync(gracePeriod, cancellationToken).ConfigureAwait(false))
        {
            await KillAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Returns true when the process exited within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// Waits (bounded) until both pipes of an exited process are read to their end: the exit event can come before
    /// the last lines do, so whoever reads the whole output of a finished process waits for this first.
    /// </summary>
    public async Task WaitForOutputAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A grandchild still holds a pipe open: what was read so far is all there is.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // SIGKILL also works on a SIGSTOP-ed process.
        await KillAsync(CancellationToken.None).ConfigureAwait(false);
        _process.Dispose();
    }

    private void OnExited()
    {
        int code;
        try
        {
            code = _process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }

        _exited.TrySetResult(code);
    }
}
