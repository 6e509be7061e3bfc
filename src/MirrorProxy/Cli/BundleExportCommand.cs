using System.CommandLine;
using System.Security.Cryptography;
using MirrorProxy.Bundles;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy bundle export</c>: cuts a signed bundle from a running (connected) mirror, of the images a list
/// names, selection rules select (resolved through the mirror, as for warm), or both; Helm chart references
/// (<c>helm:REPOSITORY/CHART@VERSION-or-range</c>) carry the chart archive, its provenance file and the repository's index.
/// </summary>
internal static class BundleExportCommand
{
    public static Command Create()
    {
        var server = ClientOptions.Server();
        var images = ClientOptions.Images();
        var platform = ClientOptions.Platform();
        var inventory = new Option<string?>("--inventory") { Description = "The island's inventory (mirrorproxy bundle inventory): leave out the blobs it already holds (a delta)." };
        var signKey = new Option<string>("--sign-key") { Required = true, Description = "ECDSA P-256 private key in PEM (mirrorproxy bundle keygen, or openssl)." };
        var output = new Option<string>("--output") { Required = true, Description = "A new directory, or FILE.tar, or FILE.tar.zst." };
        var splitSize = new Option<string?>("--split-size") { Description = "Cut a .tar or .tar.zst into parts FILE.001, FILE.002, … each smaller than this (4GiB fits FAT32)." };
        var tokenFile = BundleCommand.TokenFile();
        var ca = ClientOptions.Ca();
        var command = new Command("export", "Export a signed bundle of images and Helm charts (all of them, or only what an island lacks) from a connected mirror.")
        {
            server, images, platform, inventory, signKey, output, splitSize, tokenFile, ca,
        };
        var selection = SelectionOptions.AddTo(command, images);
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(server)!, parse.GetValue(images), parse.GetValue(platform), parse.GetValue(inventory), parse.GetValue(signKey)!,
            parse.GetValue(output)!, parse.GetValue(splitSize), parse.GetValue(tokenFile), parse.GetValue(ca), selection.Read(parse),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(
        Uri server, string? imagesSource, string? platformText, string? inventory, string signKeyFile, string output, string? splitText, string? tokenFile, string? caFile,
        SelectionArguments selection, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!PlatformSelection.TryParse(platformText, out var platforms, out var platformError))
        {
            await stderr.WriteLineAsync("--platform: " + platformError).ConfigureAwait(false);
            return 2;
        }

        long? split = null;
        if (splitText is not null)
        {
            if (!ByteSize.TryParse(splitText, out var size) || size.Bytes < 1024 * 1024)
            {
                await stderr.WriteLineAsync($"--split-size: '{splitText}' is not a size of at least 1MiB (for example 4GiB)").ConfigureAwait(false);
                return 2;
            }

            if (BundleOutput.FormOf(output) == BundleOutputForm.Directory)
            {
                await stderr.WriteLineAsync("--split-size: only a .tar or .tar.zst output is split; give --output FILE.tar or FILE.tar.zst").ConfigureAwait(false);
                return 2;
            }

            split = size.Bytes;
        }

        if (BundleOutput.FormOf(output) == BundleOutputForm.Directory
            ? Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any() || File.Exists(output)
            : File.Exists(output) || File.Exists(output + ".001"))
        {
            await stderr.WriteLineAsync($"--output: '{output}' already exists; give a new path").ConfigureAwait(false);
            return 2;
        }

        if (inventory is not null && !File.Exists(inventory))
        {
            await stderr.WriteLineAsync($"--inventory: '{inventory}' does not exist").ConfigureAwait(false);
            return 2;
        }

        ECDsa? key;
        try
        {
            key = BundleSigning.LoadPrivateKey(await File.ReadAllTextAsync(signKeyFile, cancellationToken).ConfigureAwait(false), out var keyError);
            if (key is null)
            {
                await stderr.WriteLineAsync($"--sign-key {signKeyFile}: {keyError}").ConfigureAwait(false);
                return 2;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"--sign-key: cannot read '{signKeyFile}': {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        using var signingKey = key;
        if (await SelectionOptions.ReadImagesAsync(imagesSource, stderr, cancellationToken).ConfigureAwait(false) is not { } text)
        {
            return 2;
        }

        using var trust = await BundleCommand.LoadMirrorTrustAsync(caFile, stderr).ConfigureAwait(false);
        if (trust is null)
        {
            return 2;
        }

        using var http = await ClientOptions.CreateAdminClientAsync(server, trust, tokenFile, cancellationToken).ConfigureAwait(false);
        var (list, skippedIds) = ImageList.Parse(text);
        SelectionOutcome selected;
        try
        {
            selected = await selection.ApplyAsync(http, list, platformText, stdout, stderr, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"cannot resolve the selection through {server}: {trust.Describe(ex)}").ConfigureAwait(false);
            return 2;
        }

        if (selected.Exit is { } exit)
        {
            return exit;
        }

        if (selected.Failed)
        {
            await stderr.WriteLineAsync("export FAILED: the selection could not be resolved whole (see above); nothing was written").ConfigureAwait(false);
            return 1;
        }

        (list, platforms) = (selected.Images, selected.Platforms);
        if (list.Count == 0)
        {
            await stderr.WriteLineAsync("--images, --select, --rules: the list and the rules name no image or chart").ConfigureAwait(false);
            return 2;
        }
        var exporter = new BundleExporter(http, TimeProvider.System);
        var interactive = BundleCommand.IsInteractive(stdout);
        var createdDirectory = BundleOutput.FormOf(output) == BundleOutputForm.Directory && !Directory.Exists(output);
        BundleExportResult result;
        try
        {
            result = await BundleCommand.WithProgressAsync(interactive, "export", progress =>
                exporter.ExportAsync(new BundleExportRequest(list, platforms!, inventory, signingKey, output, split, selected.Record), new Progress(stdout, interactive, progress), cancellationToken)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or InvalidDataException && !cancellationToken.IsCancellationRequested)
        {
            if (createdDirectory && Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }

            await stderr.WriteLineAsync($"export FAILED: {trust.Describe(ex)}").ConfigureAwait(false);
            return ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } ? 2 : 1;
        }

        if (!result.Succeeded)
        {
            foreach (var failure in result.ImageErrors)
            {
                await stderr.WriteLineAsync($"FAILED {failure}").ConfigureAwait(false);
            }

            if (result.Error is not null)
            {
                await stderr.WriteLineAsync($"export FAILED: {result.Error}").ConfigureAwait(false);
            }

            await stderr.WriteLineAsync("nothing was written").ConfigureAwait(false);
            return 1;
        }

        var manifest = result.Manifest!;
        await stdout.WriteLineAsync(
            $"summary: {manifest.Kind} bundle {manifest.Sequence} of mirror {manifest.MirrorId}: {manifest.Images.Count} images, " +
            (manifest.Charts is { Count: > 0 } charts ? $"{charts.Count} charts of {manifest.HelmRepositories!.Count} Helm repositories, " : "") + $"{result.Manifests} manifests, " +
            $"{result.Blobs} blobs, {BundleCommand.Bytes(result.Bytes)} bytes" +
            (manifest.Base is { } b ? $"; left out {result.BlobsOmitted} blobs ({BundleCommand.Bytes(result.BytesOmitted)} bytes) the island already has" : "") +
            (skippedIds > 0 ? $"; {skippedIds} bare image IDs skipped" : "")).ConfigureAwait(false);
        foreach (var source in selected.Record?.Sources ?? [])
        {
            await stdout.WriteLineAsync($"selected by {source}").ConfigureAwait(false);
        }

        foreach (var file in result.Written)
        {
            await stdout.WriteLineAsync($"wrote {file}").ConfigureAwait(false);
        }

        return 0;
    }

    private sealed class Progress(TextWriter output, bool interactive, BundleCommand.ByteProgress bytes) : IBundleProgress
    {
        public void Resolved(string image, string? error)
        {
            if (!interactive)
            {
                output.WriteLine(error is null ? $"resolved {image}" : $"FAILED {image}: {error}");
            }
        }

        public void Writing(long totalBytes)
        {
            bytes.SetTotal(totalBytes);
            if (!interactive)
            {
                output.WriteLine($"writing {BundleCommand.Bytes(totalBytes)} bytes");
            }
        }

        public void Advanced(long count) => bytes.Advance(count);
    }
}
