using System.Collections.Concurrent;
using System.CommandLine;
using System.Globalization;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;
using MirrorProxy.WarmUp;
using Spectre.Console;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy warm</c>: pulls every listed image through the running mirror (only what it lacks), then pins
/// them. A live progress display on a terminal (Spectre.Console), plain lines otherwise. Images of registries the
/// mirror does not serve are listed as not mirrored and are not a failure unless <c>--strict</c>. Exits 0 when every
/// other image is complete, 1 when any failed, 2 on usage or connection errors.
/// </summary>
internal static class WarmCommand
{
    public const string TokenEnvironmentVariable = "MIRRORPROXY_ADMIN_TOKEN";

    public static Command Create()
    {
        var server = ClientOptions.Server();
        var images = ClientOptions.Images();
        var platform = ClientOptions.Platform();
        var concurrency = new Option<int>("--concurrency") { Description = "Images warmed at once (default 4).", DefaultValueFactory = _ => 4 };
        var pinSet = new Option<string>("--pin-set") { Description = "Pin set that holds the warmed images (default 'default'); replaced by this run's list.", DefaultValueFactory = _ => "default" };
        var noPin = new Option<bool>("--no-pin") { Description = "Warm without pinning." };
        var tokenFile = new Option<string?>("--token-file") { Description = $"File with the mirror's admin token, for pinning from another host (or set {TokenEnvironmentVariable})." };
        var ca = ClientOptions.Ca();
        var strict = ClientOptions.Strict();
        var command = new Command("warm", "Pull images through the mirror so that they are cached, and pin them so that they are never evicted. " +
            "Images of registries the mirror does not serve are listed as not mirrored: nodes must have them already (the mirror's own image, side-loaded).")
        {
            server, images, platform, concurrency, pinSet, noPin, tokenFile, ca, strict,
        };
        var selection = SelectionOptions.AddTo(command, images);
        command.SetAction((parse, cancellationToken) => RunAsync(
            new WarmArguments(parse.GetValue(server)!, parse.GetValue(images), parse.GetValue(platform), parse.GetValue(concurrency),
                parse.GetValue(noPin) ? null : parse.GetValue(pinSet), parse.GetValue(tokenFile), parse.GetValue(ca), parse.GetValue(strict)), selection.Read(parse),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private sealed record WarmArguments(Uri Server, string? Images, string? Platform, int Concurrency, string? PinSet, string? TokenFile, string? CaFile, bool Strict);

    private static async Task<int> RunAsync(WarmArguments arguments, SelectionArguments selection, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!PlatformSelection.TryParse(arguments.Platform, out var platforms, out var platformError))
        {
            await error.WriteLineAsync("mirrorproxy warm: --platform: " + platformError).ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        if (arguments.Concurrency is < 1 or > 64)
        {
            await error.WriteLineAsync("mirrorproxy warm: --concurrency: must be from 1 to 64").ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        if (arguments.PinSet is { } set && !PinStore.IsValidName(set))
        {
            await error.WriteLineAsync("mirrorproxy warm: --pin-set: lower-case letters, digits, '.', '_' and '-', at most 64").ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        using var trust = MirrorTrust.TryCreate(arguments.CaFile, out var caError);
        if (trust is null)
        {
            await error.WriteLineAsync("mirrorproxy warm: " + caError).ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        if (await SelectionOptions.ReadImagesAsync(arguments.Images, error, cancellationToken).ConfigureAwait(false) is not { } text)
        {
            return 2;
        }

        using var http = await ClientOptions.CreateAdminClientAsync(arguments.Server, trust, arguments.TokenFile, cancellationToken).ConfigureAwait(false);

        // One request first, so that an unreachable or untrusted mirror is one clear line, not one per image.
        try
        {
            using var probe = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(probe.Token, cancellationToken);
            using var answer = await http.GetAsync("/v2/", linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"cannot warm through {arguments.Server}: {trust.Describe(ex)}").ConfigureAwait(false);
            return 2;
        }

        var (list, skippedIds) = ImageList.Parse(text);
        var selected = await selection.ApplyAsync(http, list, arguments.Platform, output, error, cancellationToken).ConfigureAwait(false);
        if (selected.Exit is { } exit)
        {
            return exit;
        }

        (list, platforms) = (selected.Images, selected.Platforms);
        var client = new WarmUpClient(http);
        var interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        IReadOnlyList<WarmImageResult> results;
        try
        {
            results = interactive
                ? await WarmWithLiveProgressAsync(client, list, platforms!, arguments.Concurrency, cancellationToken).ConfigureAwait(false)
                : await client.WarmAsync(list, platforms!, arguments.Concurrency, new PlainProgress(output, list.Count), cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            await error.WriteLineAsync($"cannot warm through {arguments.Server}: {trust.Describe(ex)}").ConfigureAwait(false);
            return 2;
        }

        var failures = results.Count(r => !r.Succeeded && !r.NotMirrored);
        var notMirrored = results.Count(r => r.NotMirrored);
        string? pinError = null;
        if (arguments.PinSet is { } pinSet)
        {
            var pinned = results.Where(r => r.Reference is not null && !r.NotMirrored).Select(r => r.Image).ToList();
            pinError = await client.PinAsync(pinSet, pinned, platforms!, selected.Record, cancellationToken).ConfigureAwait(false);
        }

        await WriteSummaryAsync(results, skippedIds, arguments.PinSet, pinError, interactive, output).ConfigureAwait(false);
        await CheckCommand.WriteNotMirroredAsync(output, results.Where(r => r.NotMirrored).Select(r => (r.Image, r.Error ?? "")).ToList(), arguments.Strict).ConfigureAwait(false);
        return failures == 0 && pinError is null && !selected.Failed && (!arguments.Strict || notMirrored == 0) ? 0 : 1;
    }

    private static async Task<IReadOnlyList<WarmImageResult>> WarmWithLiveProgressAsync(
        WarmUpClient client, IReadOnlyList<string> images, PlatformSelection platforms, int concurrency, CancellationToken cancellationToken)
    {
        IReadOnlyList<WarmImageResult> results = [];
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                results = await client.WarmAsync(images, platforms, concurrency, new LiveProgress(context), cancellationToken).ConfigureAwait(false);
            }).ConfigureAwait(false);
        return results;
    }

    private static async Task WriteSummaryAsync(IReadOnlyList<WarmImageResult> results, int skippedIds, string? pinSet, string? pinError, bool interactive, TextWriter output)
    {
        var warmed = results.Count(r => r.Succeeded && !r.AlreadyComplete);
        var cached = results.Count(r => r.AlreadyComplete);
        var failed = results.Count(r => !r.Succeeded && !r.NotMirrored);
        var notMirrored = results.Count(r => r.NotMirrored);
        var fetched = results.Sum(r => r.BytesFetched);
        var already = results.Sum(r => r.BytesCached);
        var pinLine = pinSet is null ? "not pinned" : pinError is null ? $"pinned as '{pinSet}'" : $"PIN FAILED for '{pinSet}': {pinError}";

        if (interactive)
        {
            var table = new Table().AddColumns("images", "warmed", "already cached", "failed", "not mirrored", "bytes fetched", "bytes already cached");
            table.AddRow(results.Count.ToString(CultureInfo.InvariantCulture), warmed.ToString(CultureInfo.InvariantCulture), cached.ToString(CultureInfo.InvariantCulture),
                failed.ToString(CultureInfo.InvariantCulture), notMirrored.ToString(CultureInfo.InvariantCulture),
                fetched.ToString("N0", CultureInfo.InvariantCulture), already.ToString("N0", CultureInfo.InvariantCulture));
            AnsiConsole.Write(table);
            foreach (var result in results.Where(r => !r.Succeeded && !r.NotMirrored))
            {
                AnsiConsole.MarkupLineInterpolated($"[red]FAILED[/] {result.Image}: {result.Error}");
            }

            AnsiConsole.WriteLine(pinLine);
            return;
        }

        await output.WriteLineAsync($"summary: {results.Count} images, {warmed} warmed, {cached} already cached, {failed} failed, {notMirrored} not mirrored; " +
            $"{fetched} bytes fetched, {already} bytes already cached{(skippedIds > 0 ? $"; {skippedIds} bare image IDs skipped" : "")}; {pinLine}").ConfigureAwait(false);
    }

    /// <summary>One line per image as it finishes: for logs, CI, and anything that is not a terminal.</summary>
    private sealed class PlainProgress(TextWriter output, int total) : IWarmUpProgress
    {
        private readonly Lock _gate = new();
        private int _done;

        public void Started(string image)
        {
        }

        public void Advanced(string image, long bytesFetched, long bytesToFetch)
        {
        }

        public void Finished(WarmImageResult result)
        {
            lock (_gate)
            {
                _done++;
                output.WriteLine(result switch
                {
                    { NotMirrored: true } => $"[{_done}/{total}] not mirrored {result.Image}: {result.Error}",
                    { Succeeded: false } => $"[{_done}/{total}] FAILED {result.Image}: {result.Error}",
                    { AlreadyComplete: true } => $"[{_done}/{total}] cached {result.Image} ({result.BytesCached} bytes)",
                    _ => $"[{_done}/{total}] warmed {result.Image}: {result.BytesFetched} bytes fetched, {result.BytesCached} already cached",
                });
            }
        }
    }

    /// <summary>A live bar per image on a terminal.</summary>
    private sealed class LiveProgress(ProgressContext context) : IWarmUpProgress
    {
        private readonly ConcurrentDictionary<string, ProgressTask> _tasks = new(StringComparer.Ordinal);

        public void Started(string image) => _tasks[image] = context.AddTask(Markup.Escape(image), maxValue: 1);

        public void Advanced(string image, long bytesFetched, long bytesToFetch)
        {
            if (_tasks.TryGetValue(image, out var task))
            {
                task.MaxValue = Math.Max(1, bytesToFetch);
                task.Value = Math.Min(bytesFetched, task.MaxValue);
            }
        }

        public void Finished(WarmImageResult result)
        {
            if (_tasks.TryGetValue(result.Image, out var task))
            {
                task.Description = Markup.Escape(result.Image) + (result.NotMirrored ? " [grey](not mirrored)[/]"
                    : result.Succeeded ? result.AlreadyComplete ? " [grey](cached)[/]" : " [green]done[/]" : " [red]failed[/]");
                task.Value = task.MaxValue;
                task.StopTask();
            }
        }
    }
}
