namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Runs the administration tools the fault-injection parts drive (<c>ip</c>, <c>nft</c>, <c>mount</c>, <c>losetup</c>,
/// <c>mkfs.ext4</c>), looked up in the sbin and bin directories whatever PATH says, each bounded in time.
/// </summary>
internal static class SystemCommand
{
    private static readonly string[] s_directories = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    /// <summary>The full path of a tool, or the bare name when it is in none of the usual directories.</summary>
    public static string Resolve(string tool)
        => s_directories.Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists) ?? tool;

    /// <summary>Runs the tool; throws with the command line and its output when it fails.</summary>
    public static async Task<ProcessResult> RunAsync(string tool, IEnumerable<string> arguments, CancellationToken cancellationToken, byte[]? standardInput = null)
    {
        var result = await TryRunAsync(tool, arguments, cancellationToken, standardInput).ConfigureAwait(false);
        return result.EnsureSuccess();
    }

    /// <summary>Runs the tool and returns its result, failed or not.</summary>
    public static Task<ProcessResult> TryRunAsync(string tool, IEnumerable<string> arguments, CancellationToken cancellationToken, byte[]? standardInput = null)
        => ProcessRunner.RunAsync(
            Resolve(tool),
            arguments,
            s_timeout,
            new ProcessRunOptions { StandardInput = standardInput, Environment = new Dictionary<string, string?> { ["LC_ALL"] = "C" } },
            cancellationToken);
}
