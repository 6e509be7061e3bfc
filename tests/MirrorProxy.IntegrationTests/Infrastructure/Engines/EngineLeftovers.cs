using System.Globalization;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>
/// The engines' directories are named after their test run (<see cref="TestRunNames"/>) and every daemon is started with
/// a path inside its directory on its command line. A run that crashed leaves daemons and directories behind; this kills
/// the daemons whose directory belongs to a run that is no longer alive, and deletes those directories. Nothing of a
/// live run, no other program, and nothing that is not named so, is touched.
/// </summary>
internal static class EngineLeftovers
{
    private static readonly string[] s_kinds = [CephRgw.NameKind, GarnetServer.NameKind];
    private static readonly string[] s_daemons = ["ceph-mon", "ceph-osd", "radosgw", "garnet-server"];
    private static readonly Lock s_gate = new();
    private static Task? s_removed;

    /// <summary>Where engine directories go: /tmp, unless it is a tmpfs (bluestore opens its block file with O_DIRECT).</summary>
    public static string BaseDirectory { get; } = new DriveInfo("/tmp").DriveFormat == "tmpfs" ? "/var/tmp" : "/tmp";

    public static Task RemoveOnceAsync(CancellationToken cancellationToken)
    {
        lock (s_gate)
        {
            if (s_removed is null || s_removed.IsFaulted || s_removed.IsCanceled)
            {
                s_removed = RemoveAsync(cancellationToken);
            }

            return s_removed;
        }
    }

    /// <summary>The engine directory <paramref name="argument"/> lies in when that directory belongs to a dead run, else null.</summary>
    internal static string? LeftoverDirectory(string argument)
    {
        var head = BaseDirectory + "/" + TestRunNames.Prefix;
        var start = argument.IndexOf(head, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        var name = argument[(start + BaseDirectory.Length + 1)..].Split('/')[0];
        return s_kinds.Any(kind => TestRunNames.IsLeftover(name, kind)) ? BaseDirectory + "/" + name : null;
    }

    private static async Task RemoveAsync(CancellationToken cancellationToken)
    {
        var killed = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == System.Environment.ProcessId)
            {
                continue;
            }

            string[] arguments;
            try
            {
                arguments = File.ReadAllText(Path.Combine(directory, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            }
            catch (IOException)
            {
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            if (arguments.Length > 0
                && s_daemons.Contains(Path.GetFileName(arguments[0]))
                && arguments.Any(argument => LeftoverDirectory(argument) is not null))
            {
                try
                {
                    NativeSignals.Send(pid, NativeSignals.SigKill);
                    killed.Add(pid);
                }
                catch (System.ComponentModel.Win32Exception)
                {
                    // Exited meanwhile.
                }
            }
        }

        // Bounded wait for the killed daemons to go, so their files can be deleted.
        for (var wait = 0; wait < 50 && killed.Any(pid => Directory.Exists($"/proc/{pid}")); wait++)
        {
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        foreach (var directory in Directory.EnumerateDirectories(BaseDirectory, TestRunNames.Prefix + "*"))
        {
            if (LeftoverDirectory(directory) == directory)
            {
                ShortTempDirectory.DeleteBestEffort(directory);
            }
        }
    }
}
