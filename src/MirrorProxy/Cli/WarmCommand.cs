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
/// them. A live progress display on a terminal (Spectre.Console), plain lines otherwise. Exits 0 when every image
/// is complete, 1 when any failed, 2 on usage or connection errors.
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
        var command = new Command("warm", "Pull images through the mirror so that they are cached, and pin them so that they are never evicted.")
        {
            server, images, platform, concurrency, pinSet, noPin, tokenFile,
        };
        var selection = SelectionOptions.AddTo(command, images);
        command.SetAction((parse, cancellationToken) => RunAsync(
            new WarmArguments(parse.GetValue(server)!, parse.GetValue(images), parse.GetValue(platform), parse.GetValue(concurrency),
                parse.GetValue(noPin) ? null : parse.GetValue(pinSet), parse.GetValue(tokenFile)), selection.Read(parse),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private sealed record WarmArguments(Uri Server, string? Images, string? Platform, int Concurrency, string? PinSet, string? TokenFile);

    private static async Task<int> RunAsync(WarmArguments arguments, SelectionArguments selection, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!PlatformSelection.TryParse(arguments.Platform, out var platforms, out var platformError))
        {
            await error.WriteLineAsync("--platform: " + platformError).ConfigureAwait(false);
            return 2;
        }

        if (arguments.Concurrency is < 1 or > 64)
        {
            await error.WriteLineAsync("--concurrency: must be from 1 to 64").ConfigureAwait(false);
            return 2;
        }

        if (arguments.PinSet is { } set && !PinStore.IsValidName(set))
        {
            await error.WriteLineAsync("--pin-set: lower-case letters, digits, '.', '_' and '-', at most 64").ConfigureAwait(false);
            return 2;
        }

        if (await SelectionOptions.ReadImagesAsync(arguments.Images, error, cancellationToken).ConfigureAwait(false) is not { } text)
        {
            return 2;
        }

        var token = arguments.TokenFile is { } file ? (await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false)).Trim() : Environment.GetEnvironmentVariable(TokenEnvironmentVariable);
        using var http = ClientOptions.CreateHttpClient(arguments.Server);
        http.Timeout = Timeout.InfiniteTimeSpan;
        if (!string.IsNullOrEmpty(token))
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
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
            await error.WriteLineAsync($"cannot warm through {arguments.Server}: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        var failures = results.Count(r => !r.Succeeded);
        string? pinError = null;
        if (arguments.PinSet is { } pinSet)
        {
            var pinned = results.Where(r => r.Reference is not null).Select(r => r.Image).ToList();
            pinError = await client.PinAsync(pinSet, pinned, platforms!, selected.Record, cancellationToken).ConfigureAwait(false);
        }

        await WriteSummaryAsync(results, skippedIds, arguments.PinSet, pinError, interactive, output).ConfigureAwait(false);
        return failures == 0 && pinError is null && !selected.Failed ? 0 : 1;
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
        var failed = results.Count(r => !r.Succeeded);
        var fetched = results.Sum(r => r.BytesFetched);
        var already = results.Sum(r => r.BytesCached);
        var pinLine = pinSet is null ? "not pinned" : pinError is null ? $"pinned as '{pinSet}'" : $"PIN FAILED for '{pinSet}': {pinError}";

        if (interactive)
        {
            var table = new Table().AddColumns("images", "warmed", "already cached", "failed", "bytes fetched", "bytes already cached");
            table.AddRow(results.Count.ToString(CultureInfo.InvariantCulture), warmed.ToString(CultureInfo.InvariantCulture), cached.ToString(CultureInfo.InvariantCulture),
                failed.ToString(CultureInfo.InvariantCulture), fetched.ToString("N0", CultureInfo.InvariantCulture), already.ToString("N0", CultureInfo.InvariantCulture));
            AnsiConsole.Write(table);
            foreach (var result in results.Where(r => !r.Succeeded))
            {
                AnsiConsole.MarkupLineInterpolated($"[red]FAILED[/] {result.Image}: {result.Error}");
            }

            AnsiConsole.WriteLine(pinLine);
            return;
        }

        await output.WriteLineAsync($"summary: {results.Count} images, {warmed} warmed, {cached} already cached, {failed} failed; " +
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
                task.Description = Markup.Escape(result.Image) + (result.Succeeded ? result.AlreadyComplete ? " [grey](cached)[/]" : " [green]done[/]" : " [red]failed[/]");
                task.Value = task.MaxValue;
                task.StopTask();
            }
        }
    }
}
