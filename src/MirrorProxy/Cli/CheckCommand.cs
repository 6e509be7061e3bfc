using System.CommandLine;
using System.Net.Http.Json;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy check</c>: reports, per image, whether everything a pull needs is in the mirror's cache.
/// Exits 0 when every image the mirror serves is complete; 1 when any is missing or unparseable (or, with
/// <c>--strict</c>, of a registry the mirror does not serve); 2 on usage or connection errors.
/// </summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        var server = ClientOptions.Server();
        var images = ClientOptions.Images();
        var platform = ClientOptions.Platform();
        var ca = ClientOptions.Ca();
        var strict = ClientOptions.Strict();
        var command = new Command("check", "Check that every listed image is complete in the mirror's cache (reads the cache only; never pulls). " +
            "Images of registries the mirror does not serve are listed as not mirrored: nodes must have them already (the mirror's own image, side-loaded).")
        {
            server, images, platform, ca, strict,
        };
        var selection = SelectionOptions.AddTo(command, images);
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(server)!, parse.GetValue(images), parse.GetValue(platform), parse.GetValue(ca), parse.GetValue(strict), selection.Read(parse),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(
        Uri server, string? source, string? platformText, string? caFile, bool strict, SelectionArguments selection, TextWriter output, TextWriter error,
        CancellationToken cancellationToken)
    {
        if (!PlatformSelection.TryParse(platformText, out var platforms, out var platformError))
        {
            await error.WriteLineAsync("mirrorproxy check: --platform: " + platformError).ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        using var trust = MirrorTrust.TryCreate(caFile, out var caError);
        if (trust is null)
        {
            await error.WriteLineAsync("mirrorproxy check: " + caError).ConfigureAwait(false);
            return MirrorProxyCli.UsageError;
        }

        if (await SelectionOptions.ReadImagesAsync(source, error, cancellationToken).ConfigureAwait(false) is not { } text)
        {
            return MirrorProxyCli.UsageError;
        }

        var (list, skippedIds) = ImageList.Parse(text);
        ImageCheckResponse? response;
        SelectionOutcome selected;
        try
        {
            using var client = ClientOptions.CreateHttpClient(server, trust);
            selected = await selection.ApplyAsync(client, list, platformText, output, error, cancellationToken).ConfigureAwait(false);
            if (selected.Exit is { } exit)
            {
                return exit;
            }

            (list, platforms) = (selected.Images, selected.Platforms);
            using var answer = await client.PostAsJsonAsync("/status/images", new ImageCheckRequest(list, platforms!.ToString()), ImageCheckJsonContext.Default.ImageCheckRequest, cancellationToken).ConfigureAwait(false);
            if (!answer.IsSuccessStatusCode)
            {
                await error.WriteLineAsync($"cannot check against {server}: it answered {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}").ConfigureAwait(false);
                return 2;
            }

            response = await answer.Content.ReadFromJsonAsync(ImageCheckJsonContext.Default.ImageCheckResponse, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Text.Json.JsonException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"cannot check against {server}: {trust.Describe(ex)}").ConfigureAwait(false);
            return 2;
        }

        var complete = 0;
        var missing = 0;
        var invalid = 0;
        var notMirrored = new List<ImageCheckResult>();
        foreach (var result in response?.Images ?? [])
        {
            switch (result.Status)
            {
                case ImageStatus.Ok:
                    complete++;
                    await output.WriteLineAsync($"OK {result.Image}").ConfigureAwait(false);
                    break;
                case ImageStatus.Invalid:
                    invalid++;
                    await output.WriteLineAsync($"INVALID: {result.Image}: {string.Join("; ", result.Missing)}").ConfigureAwait(false);
                    break;
                case ImageStatus.NotMirrored:
                    notMirrored.Add(result);
                    break;
                default:
                    missing++;
                    await output.WriteLineAsync($"MISSING: {result.Image}: {string.Join("; ", result.Missing)}").ConfigureAwait(false);
                    break;
            }
        }

        await WriteNotMirroredAsync(output, notMirrored.Select(r => (r.Image, string.Join("; ", r.Missing))).ToList(), strict).ConfigureAwait(false);
        await output.WriteLineAsync(
            $"{list.Count} images checked for {response?.Platforms}: {complete} complete, {missing} missing, {invalid} invalid, {notMirrored.Count} not mirrored" +
            (skippedIds > 0 ? $" ({skippedIds} bare image IDs skipped)" : "")).ConfigureAwait(false);
        return missing == 0 && invalid == 0 && !selected.Failed && (!strict || notMirrored.Count == 0) ? 0 : 1;
    }

    /// <summary>The section shared with <c>warm</c>: images of registries the mirror does not serve.</summary>
    internal static async Task WriteNotMirroredAsync(TextWriter output, IReadOnlyList<(string Image, string Reason)> images, bool strict)
    {
        if (images.Count == 0)
        {
            return;
        }

        await output.WriteLineAsync(strict
            ? $"not mirrored ({images.Count}; --strict counts them as failures):"
            : $"not mirrored ({images.Count}; not a failure: nodes must already have these images, as they have the mirror's own; --strict fails on them):").ConfigureAwait(false);
        foreach (var (image, reason) in images)
        {
            await output.WriteLineAsync($"NOT MIRRORED: {image}: {reason}").ConfigureAwait(false);
        }
    }
}
