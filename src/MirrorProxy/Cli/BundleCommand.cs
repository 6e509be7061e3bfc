using System.CommandLine;
using System.Globalization;
using MirrorProxy.Bundles;
using Spectre.Console;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy bundle</c>: air-gap bundles. A connected mirror exports a signed bundle of what an island needs
/// (or only what it lacks), the island's mirror verifies and imports it, and its nodes pull as if the upstream
/// had been there. Exit codes: 0 done, 1 refused or failed, 2 usage (bad flags, unreadable files, no mirror).
/// </summary>
internal static class BundleCommand
{
    public static Command Create() => new("bundle", "Air-gap bundles: export signed bundles from a connected mirror, verify and import them on an island.")
    {
        BundleExportCommand.Create(),
        BundleImportCommand.CreateVerify(),
        BundleImportCommand.CreateImport(),
        BundleInventoryCommand.Create(),
        BundleKeygenCommand.Create(),
    };

    public static Option<string?> TokenFile() => new("--token-file")
    {
        Description = $"File with the mirror's admin token, for a mirror on another host (or set {WarmCommand.TokenEnvironmentVariable}).",
    };

    /// <summary>The mirror's CA (<c>--ca</c>), or null with the reason written (a usage error).</summary>
    public static async Task<MirrorTrust?> LoadMirrorTrustAsync(string? caFile, TextWriter error)
    {
        var trust = MirrorTrust.TryCreate(caFile, out var reason);
        if (trust is null)
        {
            await error.WriteLineAsync(reason).ConfigureAwait(false);
        }

        return trust;
    }

    /// <summary>Loads the <c>--trust</c> keys; null (with the reason written) when one cannot be read.</summary>
    public static async Task<List<TrustedKey>?> LoadTrustAsync(IReadOnlyList<string> files, TextWriter error, CancellationToken cancellationToken)
    {
        var keys = new List<TrustedKey>();
        foreach (var file in files)
        {
            string pem;
            try
            {
                pem = await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"--trust: cannot read '{file}': {ex.Message}").ConfigureAwait(false);
                return null;
            }

            if (BundleSigning.LoadPublicKey(pem, out var reason) is not { } key)
            {
                await error.WriteLineAsync($"--trust {file}: {reason}").ConfigureAwait(false);
                return null;
            }

            keys.Add(key);
        }

        return keys;
    }

    public static bool IsInteractive(TextWriter output) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    public static string Bytes(long bytes) => bytes.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Runs <paramref name="work"/> under one byte progress bar on a terminal, or plainly otherwise.</summary>
    public static async Task<T> WithProgressAsync<T>(bool interactive, string description, Func<ByteProgress, Task<T>> work)
    {
        if (!interactive)
        {
            return await work(new ByteProgress(null)).ConfigureAwait(false);
        }

        T result = default!;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(description), maxValue: 1);
                result = await work(new ByteProgress(task)).ConfigureAwait(false);
                task.Value = task.MaxValue;
                task.StopTask();
            }).ConfigureAwait(false);
        return result;
    }

    /// <summary>A byte counter shown as a bar on a terminal; thread-safe.</summary>
    internal sealed class ByteProgress(ProgressTask? task)
    {
        private long _done;

        public long Done => Interlocked.Read(ref _done);

        public void SetTotal(long total)
        {
            if (task is not null)
            {
                task.MaxValue = Math.Max(1, total);
            }
        }

        public void Advance(long bytes)
        {
            var done = Interlocked.Add(ref _done, bytes);
            if (task is not null)
            {
                task.Value = Math.Min(done, task.MaxValue);
            }
        }
    }
}
