using System.Globalization;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Names for the kernel objects a test creates (network namespaces, mounts, loop devices' backing files):
/// <c>mirrorproxy-test-&lt;kind&gt;-&lt;pid&gt;-&lt;start time&gt;-&lt;n&gt;</c>. The process id with its start time
/// (field 22 of <c>/proc/&lt;pid&gt;/stat</c>) names one test run: an object whose run is no longer alive is the
/// leftover of a run that crashed, and only such objects are ever cleaned up by a later run.
/// </summary>
internal static class TestRunNames
{
    public const string Prefix = "mirrorproxy-test-";

    private static readonly string s_run = $"{Environment.ProcessId}-{ReadStartTime(Environment.ProcessId)}";
    private static int s_counter;

    /// <summary><c>&lt;pid&gt;-&lt;start time&gt;</c> of this process.</summary>
    public static string Run => s_run;

    /// <summary>A name unique in this run and across runs, e.g. <c>mirrorproxy-test-ns-4242-987654-3</c>.</summary>
    public static string Next(string kind) => $"{Prefix}{kind}-{s_run}-{Interlocked.Increment(ref s_counter)}";

    /// <summary>
    /// True when <paramref name="name"/> is a name of this kind made by a run that is no longer alive. A name
    /// that does not parse, or whose run is this one or still alive, is never a leftover.
    /// </summary>
    public static bool IsLeftover(string name, string kind)
    {
        var head = Prefix + kind + "-";
        if (!name.StartsWith(head, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = name[head.Length..].Split('-');
        if (parts.Length != 3
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            || !ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var startTime)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            return false;
        }

        return ReadStartTime(pid) != startTime;
    }

    /// <summary>The start time (clock ticks since boot) of a live process, or null when there is none with this id.</summary>
    private static ulong? ReadStartTime(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }

        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
        // Field 3 (state) is the first after it; the start time is field 22.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return ulong.Parse(fields[22 - 3], CultureInfo.InvariantCulture);
    }
}
