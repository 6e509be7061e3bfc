using System.Diagnostics;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>Result of a finished (or timed-out) external process.</summary>
internal sealed class ProcessResult
{
    public ProcessResult(
        string fileName,
        IReadOnlyList<string> arguments,
        int exitCode,
        byte[] standardOutputBytes,
        string standardError,
        TimeSpan duration,
        bool timedOut)
    {
        FileName = fileName;
        Arguments = arguments;
        ExitCode = exitCode;
        StandardOutputBytes = standardOutputBytes;
        StandardError = standardError;
        Duration = duration;
        TimedOut = timedOut;
    }

    public string FileName { get; }

    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Exit code; -1 when the process was killed because of the timeout.</summary>
    public int ExitCode { get; }

    /// <summary>Exact stdout bytes (no decoding, no trimming).</summary>
    public byte[] StandardOutputBytes { get; }

    public string StandardOutput => Encoding.UTF8.GetString(StandardOutputBytes);

    public string StandardError { get; }

    public TimeSpan Duration { get; }

    public bool TimedOut { get; }

    public bool Succeeded => !TimedOut && ExitCode == 0;

    public string CommandLine => ProcessRunner.FormatCommandLine(FileName, Arguments);

    /// <summary>Throws with the full command line and output when the process failed or timed out.</summary>
    public ProcessResult EnsureSuccess()
    {
        if (!Succeeded)
        {
            throw new InvalidOperationException(Describe());
        }

        return this;
    }

    public string Describe()
    {
        var status = TimedOut ? $"TIMED OUT after {Duration.TotalSeconds:F1}s (process tree killed)" : $"exit code {ExitCode} after {Duration.TotalSeconds:F1}s";
        return $"`{CommandLine}` {status}{Environment.NewLine}--- stdout ---{Environment.NewLine}{StandardOutput}{Environment.NewLine}--- stderr ---{Environment.NewLine}{StandardError}";
    }

    public override string ToString() => Describe();
}

/// <summary>Optional knobs for <see cref="ProcessRunner"/>.</summary>
internal sealed class ProcessRunOptions
{
    public string? WorkingDirectory { get; init; }

    /// <summary>Environment overrides; a null value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>Bytes written to stdin (stdin is closed afterwards). Null: stdin is closed immediately.</summary>
    public byte[]? StandardInput { get; init; }
}

/// <summary>Runs external processes with bounded waits. Every wait is bounded; on timeout the whole process tree is killed.</summary>
internal static class ProcessRunner
{
    /// <summary>How long we wait for pipes to drain / the process to be reaped after a kill.</summary>
    private static readonly TimeSpan s_reapTimeout = TimeSpan.FromSeconds(10);

    public static Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
        => RunAsync(fileName, arguments, timeout, options: null, cancellationToken);

    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        TimeSpan timeout,
        ProcessRunOptions? options,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        var args = arguments.ToArray();
        var startInfo = CreateStartInfo(fileName, args, options);
        startInfo.RedirectStandardInput = true;

        using var process = new Process { StartInfo = startInfo };
        var stopwatch = Stopwatch.StartNew();
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start `{FormatCommandLine(fileName, args)}`.");
        }

        // Read both pipes concurrently from the start so a chatty process never blocks on a full pipe.
        var stdoutBuffer = new MemoryStream();
        var stdoutTask = process.StandardOutput.BaseStream.CopyToAsync(stdoutBuffer, CancellationToken.None);
        var stderrTask = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var timeoutCts = new CancellationTokenSource(timeout);
        using var linkedCts = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken);

        var timedOut = false;
        try
        {
            try
            {
                if (options?.StandardInput is { } stdin)
                {
                    await process.StandardInput.BaseStream.WriteAsync(stdin, linkedCts.Token).ConfigureAwait(false);
                }
            }
            catch (IOException)
            {
                // The process closed stdin early; its exit code will tell the story.
            }
            finally
            {
                process.StandardInput.Close();
            }

            await process.WaitForExitAsync(linkedCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillTree(process);
            await WaitForExitBoundedAsync(process).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            timedOut = true;
        }

        string stderr;
        byte[] stdoutBytes;
        try
        {
            await Task.WhenAll(stdoutTask, stderrTask).WaitAsync(s_reapTimeout, CancellationToken.None).ConfigureAwait(false);
            stderr = await stderrTask.ConfigureAwait(false);
            stdoutBytes = stdoutBuffer.ToArray();
        }
        catch (TimeoutException)
        {
            // A grandchild that escaped the kill still holds the pipes open; do not touch the buffer that is still being written.
            stderr = stderrTask.IsCompletedSuccessfully ? await stderrTask.ConfigureAwait(false) : "<stderr not drained: pipe still open after process exit>";
            stdoutBytes = stdoutTask.IsCompletedSuccessfully ? stdoutBuffer.ToArray() : Encoding.UTF8.GetBytes("<stdout not drained: pipe still open after process exit>");
        }

        stopwatch.Stop();
        var exitCode = timedOut || !process.HasExited ? -1 : process.ExitCode;
        return new ProcessResult(fileName, args, exitCode, stdoutBytes, stderr, stopwatch.Elapsed, timedOut);
    }

    /// <summary>
    /// Starts a long-running process whose stdout/stderr lines are captured into <paramref name="output"/>
    /// (or a new buffer when null). The caller owns the returned handle and must dispose it.
    /// </summary>
    public static RunningProcess Start(string fileName, IEnumerable<string> arguments, ProcessRunOptions? options = null, OutputBuffer? output = null)
    {
        var args = arguments.ToArray();
        var startInfo = CreateStartInfo(fileName, args, options);
        startInfo.RedirectStandardInput = false;
        return RunningProcess.Start(startInfo, FormatCommandLine(fileName, args), output ?? new OutputBuffer());
    }

    internal static ProcessStartInfo CreateStartInfo(string fileName, IReadOnlyList<string> args, ProcessRunOptions? options)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
            WorkingDirectory = options?.WorkingDirectory ?? string.Empty,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }

        if (options?.Environment is { } environment)
        {
            foreach (var (key, value) in environment)
            {
                if (value is null)
                {
                    startInfo.Environment.Remove(key);
                }
                else
                {
                    startInfo.Environment[key] = value;
                }
            }
        }

        return startInfo;
    }

    internal static void KillTree(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Raced with exit.
        }
    }

    internal static async Task WaitForExitBoundedAsync(Process process)
    {
        try
        {
            using var cts = new CancellationTokenSource(s_reapTimeout);
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Could not be reaped in time (e.g. uninterruptible sleep); nothing more we can do.
        }
    }

    internal static string FormatCommandLine(string fileName, IEnumerable<string> args)
        => string.Join(' ', new[] { fileName }.Concat(args).Select(Quote));

    private static string Quote(string value)
        => value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@,+%".Contains(c))
            ? value
            : "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
