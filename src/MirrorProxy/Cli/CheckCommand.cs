using System.CommandLine;
using System.Net.Http.Json;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy check</c>: reports, per image, whether everything a pull needs is in the mirror's cache.
/// Exits 0 only when every image is complete; 1 when any is missing or unparseable; 2 on usage or connection errors.
/// </summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        var server = ClientOptions.Server();
        var images = ClientOptions.Images();
        var platform = ClientOptions.Platform();
        var command = new Command("check", "Check that every listed image is complete in the mirror's cache (reads the cache only; never pulls).")
        {
            server, images, platform,
        };
        var selection = SelectionOptions.AddTo(command, images);
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(server)!, parse.GetValue(images), parse.GetValue(platform), selection.Read(parse),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(
        Uri server, string? source, string? platformText, SelectionArguments selection, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!PlatformSelection.TryParse(platformText, out var platforms, out var platformError))
        {
            await error.WriteLineAsync("--platform: " + platformError).ConfigureAwait(false);
            return 2;
        }

        if (await SelectionOptions.ReadImagesAsync(source, error, cancellationToken).ConfigureAwait(false) is not { } text)
        {
            return 2;
        }

        var (list, skippedIds) = ImageList.Parse(text);
        ImageCheckResponse? response;
        SelectionOutcome selected;
        try
        {
            using var client = ClientOptions.CreateHttpClient(server);
            selected = await selection.ApplyAsync(client, list, platformText, output, error, cancellationToken).ConfigureAwait(false);
            if (selected.Exit is { } exit)
            {
                return exit;
            }

            (list, platforms) = (selected.Images, selected.Platforms);
            using var answer = await client.PostAsJsonAsync("/status/images", new ImageCheckRequest(list, platforms!.ToString()), ImageCheckJsonContext.Default.ImageCheckRequest, cancellationToken).ConfigureAwait(false);
            if (!answer.IsSuccessStatusCode)
            {
                await error.WriteLineAsync($"{server} answered {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}").ConfigureAwait(false);
                return 2;
            }

            response = await answer.Content.ReadFromJsonAsync(ImageCheckJsonContext.Default.ImageCheckResponse, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Text.Json.JsonException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"cannot check against {server}: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        var complete = 0;
        var missing = 0;
        var invalid = 0;
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
                default:
                    missing++;
                    await output.WriteLineAsync($"MISSING: {result.Image}: {string.Join("; ", result.Missing)}").ConfigureAwait(false);
                    break;
            }
        }

        await output.WriteLineAsync(
            $"{list.Count} images checked for {response?.Platforms}: {complete} complete, {missing} missing, {invalid} invalid" +
            (skippedIds > 0 ? $" ({skippedIds} bare image IDs skipped)" : "")).ConfigureAwait(false);
        return missing == 0 && invalid == 0 && !selected.Failed ? 0 : 1;
    }
}
