using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>
/// One daemon an engine started in the foreground (so its PID is the one we hold): its captured stdout and stderr,
/// the log file it writes, and a stop that signals exactly that PID (SIGTERM, then SIGKILL after a grace period).
/// </summary>
internal sealed class EngineDaemon : IAsyncDisposable
{
    /// <summary>Stripped from every engine process: a CA bundle meant for HTTPS endpoints breaks clients of a plain-HTTP one,
    /// and a CEPH_CONF or CEPH_ARGS from the machine would point the tools at another cluster.</summary>
    public static readonly IReadOnlyDictionary<string, string?> Environment = new Dictionary<string, string?>
    {
        ["AWS_CA_BUNDLE"] = null,
        ["CEPH_CONF"] = null,
        ["CEPH_ARGS"] = null,
        ["LC_ALL"] = "C",
    };

    private static readonly TimeSpan s_gracePeriod = TimeSpan.FromSeconds(10);

    private readonly RunningProcess _process;

    private EngineDaemon(string name, string? logFile, RunningProcess process)
    {
        Name = name;
        LogFile = logFile;
        _process = process;
    }

    /// <summary>A short name for messages, e.g. <c>mon.a</c>.</summary>
    public string Name { get; }

    /// <summary>The log file the daemon writes besides its stdout and stderr, if any.</summary>
    public string? LogFile { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public Task<int> Exited => _process.Exited;

    public static EngineDaemon Start(string name, string executable, IEnumerable<string> arguments, string workingDirectory, string? logFile)
    {
        var process = ProcessRunner.Start(
            executable,
            arguments,
            new ProcessRunOptions { WorkingDirectory = workingDirectory, Environment = Environment },
            new OutputBuffer(maxLines: 10_000));
        return new EngineDaemon(name, logFile, process);
    }

    /// <summary>SIGTERM to this PID, then SIGKILL if it has not exited within the grace period; waits (bounded) for the exit.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _process.StopAsync(s_gracePeriod, cancellationToken);

    /// <summary>SIGKILL to this PID, as a crash would.</summary>
    public Task KillAsync(CancellationToken cancellationToken = default) => _process.KillAsync(cancellationToken);

    /// <summary>The last lines of the daemon's log file and of its captured output, for failure messages.</summary>
    public string Tail(int lineCount = 40)
    {
        var builder = new StringBuilder();
        builder.Append("--- ").Append(Name).Append(" (pid ").Append(Id)
            .Append(HasExited ? $", exited with {Exited.Result}" : ", running").AppendLine(") ---");
        if (LogFile is not null)
        {
            builder.Append("log ").Append(LogFile).AppendLine(":").Append(TailOfFile(LogFile, lineCount));
        }

        builder.AppendLine("stdout/stderr:").Append(_process.Output.Tail(lineCount));
        return builder.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _process.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The last lines of a file that may be large (reads at most its last 32 KiB).</summary>
    internal static string TailOfFile(string path, int lineCount)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var length = Math.Min(file.Length, 32 * 1024);
            file.Seek(-length, SeekOrigin.End);
            var buffer = new byte[length];
            file.ReadExactly(buffer);
            var lines = Encoding.UTF8.GetString(buffer).Split('\n');
            return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - lineCount - 1))).TrimEnd() + System.Environment.NewLine;
        }
        catch (IOException ex)
        {
            return $"<{ex.Message}>{System.Environment.NewLine}";
        }
    }
}
