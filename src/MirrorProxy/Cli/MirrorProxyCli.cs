using System.CommandLine;

namespace MirrorProxy.Cli;

internal static class MirrorProxyCli
{
    /// <summary>Exit code of a usage error (unknown option, missing or malformed value), for every command.</summary>
    public const int UsageError = 2;

    public static RootCommand Create() => new("MirrorProxy: a pull-through OCI registry mirror for clusters that must keep running offline.")
    {
        ServeCommand.Create(),
        CheckCommand.Create(),
        WarmCommand.Create(),
        HealthCommand.Create(),
        VerifyCommand.Create(),
        CacheOwnerCommand.Create(),
        BundleCommand.Create(),
    };

    /// <summary>
    /// Parses and runs a command line. A usage error is one line on standard error and exit code 2, never the help
    /// text and never 1, which the commands use for their own verdicts (images missing, mirror unhealthy).
    /// </summary>
    public static async Task<int> InvokeAsync(string[] args, InvocationConfiguration? configuration = null, CancellationToken cancellationToken = default)
    {
        var parse = Create().Parse(args);
        if (parse.Errors.Count == 0)
        {
            return await parse.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
        }

        var command = parse.CommandResult.Command;
        var name = command is RootCommand ? "mirrorproxy" : $"mirrorproxy {command.Name}";
        var errors = string.Join("; ", parse.Errors.Select(e => e.Message.TrimEnd('.')).Distinct());
        await (configuration?.Error ?? Console.Error).WriteLineAsync($"{name}: {errors} (see {name} --help)").ConfigureAwait(false);
        return UsageError;
    }
}
