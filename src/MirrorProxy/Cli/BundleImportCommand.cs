using System.CommandLine;
using System.Net;
using System.Net.Http.Json;
using MirrorProxy.Bundles;
using MirrorProxy.Common;
using MirrorProxy.WarmUp;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy bundle verify</c> (offline: signature, file list, every hash) and <c>mirrorproxy bundle import</c>
/// (streams the bundle to the island's mirror, which verifies it the same way before it takes anything).
/// </summary>
internal static class BundleImportCommand
{
    private static Option<string[]> Trust() => new("--trust")
    {
        Description = "Public key (PEM) the bundle must be signed with; repeat it to accept several (key rotation).",
        AllowMultipleArgumentsPerToken = false,
    };

    private static Option<bool> AllowUnsigned() => new("--allow-unsigned") { Description = "Take a bundle without checking its signature (the file hashes are still checked)." };

    private static Argument<string[]> Bundle() => new("bundle")
    {
        Description = "The bundle: a directory, a .tar or .tar.zst, or the parts of a split archive (FILE.001 brings the rest).",
        Arity = ArgumentArity.OneOrMore,
    };

    public static Command CreateVerify()
    {
        var trust = Trust();
        var allowUnsigned = AllowUnsigned();
        var bundle = Bundle();
        var command = new Command("verify", "Verify a bundle offline: its signature, its file list and the hash of every file.") { trust, allowUnsigned, bundle };
        command.SetAction((parse, cancellationToken) => VerifyAsync(
            parse.GetValue(trust) ?? [], parse.GetValue(allowUnsigned), parse.GetValue(bundle)!,
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    public static Command CreateImport()
    {
        var server = ClientOptions.Server();
        var trust = Trust();
        var allowUnsigned = AllowUnsigned();
        var pinSet = new Option<string>("--pin-set") { Description = "Pin set the imported images join (default 'bundle').", DefaultValueFactory = _ => "bundle" };
        var tokenFile = BundleCommand.TokenFile();
        var ca = ClientOptions.Ca();
        var mirrorReads = new Option<bool>("--mirror-reads-path")
        {
            Description = "The mirror reads the bundle from the same path itself (it runs on this host, or sees the same mount): nothing is copied through HTTP.",
        };
        var bundle = Bundle();
        var command = new Command("import", "Import a bundle into a mirror's cache (verified first; a refused bundle leaves nothing behind).")
        {
            server, trust, allowUnsigned, pinSet, tokenFile, ca, mirrorReads, bundle,
        };
        command.SetAction((parse, cancellationToken) => ImportAsync(
            parse.GetValue(server)!, parse.GetValue(trust) ?? [], parse.GetValue(allowUnsigned), parse.GetValue(pinSet)!, parse.GetValue(tokenFile), parse.GetValue(ca),
            parse.GetValue(mirrorReads), parse.GetValue(bundle)!, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<BundleSource?> OpenAsync(string[] paths, TextWriter error)
    {
        try
        {
            return BundleSource.Open(paths);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"cannot read the bundle: {ex.Message}").ConfigureAwait(false);
            return null;
        }
    }

    private static async Task<int> VerifyAsync(string[] trustFiles, bool allowUnsigned, string[] paths, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (await BundleCommand.LoadTrustAsync(trustFiles, error, cancellationToken).ConfigureAwait(false) is not { } keys)
        {
            return 2;
        }

        try
        {
            await using var source = await OpenAsync(paths, error).ConfigureAwait(false);
            if (source is null)
            {
                return 2;
            }

            var interactive = BundleCommand.IsInteractive(output);
            var result = await BundleCommand.WithProgressAsync(interactive, "verify", progress =>
            {
                progress.SetTotal(source.InputBytes);
                return BundleReader.ReadAsync(source.Tar, new BundleTrust(keys, allowUnsigned), new DiscardingSink(), _ => progress.Advance(source.InputRead - progress.Done), cancellationToken);
            }).ConfigureAwait(false);

            if (!result.Accepted)
            {
                await error.WriteLineAsync($"REFUSED ({result.Refusal}): {result.Message}").ConfigureAwait(false);
                return 1;
            }

            var manifest = result.Manifest!;
            await output.WriteLineAsync(
                $"verified: {manifest.Kind} bundle {manifest.Sequence} of mirror {manifest.MirrorId}, cut {manifest.Created:u}, " +
                $"{(result.SignedBy is { } by ? $"signed by key {by}" : "signature NOT checked (--allow-unsigned)")}; {result.Files} files, {BundleCommand.Bytes(result.Bytes)} bytes").ConfigureAwait(false);
            foreach (var image in manifest.Images)
            {
                await output.WriteLineAsync($"  {image.Reference} {image.Digest}{(image.Platforms.Count > 0 ? " " + string.Join(',', image.Platforms) : "")}").ConfigureAwait(false);
            }

            foreach (var chart in manifest.Charts ?? [])
            {
                await output.WriteLineAsync($"  {chart.Reference} {chart.Digest}{(chart.ProvenanceDigest is null ? "" : " (with provenance)")} from {chart.Url}").ConfigureAwait(false);
            }

            if (manifest.Base is { } b)
            {
                await output.WriteLineAsync($"delta: cut against the inventory of mirror {b.MirrorId} ({b.Created:u}, {b.Objects} objects); {b.Omitted} blobs are expected there").ConfigureAwait(false);
            }

            return 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"REFUSED: the bundle cannot be read: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        finally
        {
            keys.ForEach(k => k.Dispose());
        }
    }

    private static async Task<int> ImportAsync(
        Uri server, string[] trustFiles, bool allowUnsigned, string pinSet, string? tokenFile, string? caFile, bool mirrorReads, string[] paths, TextWriter output, TextWriter error,
        CancellationToken cancellationToken)
    {
        if (!PinStore.IsValidName(pinSet))
        {
            await error.WriteLineAsync("--pin-set: lower-case letters, digits, '.', '_' and '-', at most 64").ConfigureAwait(false);
            return 2;
        }

        if (await BundleCommand.LoadTrustAsync(trustFiles, error, cancellationToken).ConfigureAwait(false) is not { } keys)
        {
            return 2;
        }

        try
        {
            if (keys.Count == 0 && !allowUnsigned)
            {
                await error.WriteLineAsync("REFUSED: no trusted key was given (--trust KEY.pub); --allow-unsigned imports without checking who made the bundle. Nothing was imported.").ConfigureAwait(false);
                return 1;
            }

            // The mirror finds the other parts of a split archive from the first, as this program does.
            var mirrorPath = mirrorReads ? Path.GetFullPath(paths[0]) : null;
            await using var source = mirrorReads ? null : await OpenAsync(paths, error).ConfigureAwait(false);
            if (source is null && !mirrorReads)
            {
                return 2;
            }

            using var mirrorTrust = await BundleCommand.LoadMirrorTrustAsync(caFile, error).ConfigureAwait(false);
            if (mirrorTrust is null)
            {
                return 2;
            }

            using var http = await ClientOptions.CreateAdminClientAsync(server, mirrorTrust, tokenFile, cancellationToken).ConfigureAwait(false);
            var interactive = BundleCommand.IsInteractive(output);
            ProgressStream? body = null;
            var (status, result, failure) = await BundleCommand.WithProgressAsync(interactive, "import", async progress =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post,
                    $"/admin/bundles/import?pinSet={Uri.EscapeDataString(pinSet)}{(allowUnsigned ? "&allowUnsigned=true" : "")}{(mirrorPath is null ? "" : "&path=" + Uri.EscapeDataString(mirrorPath))}");
                if (source is not null)
                {
                    progress.SetTotal(source.InputBytes);
                    body = new ProgressStream(source.Tar, () => progress.Advance(source.InputRead - progress.Done));
                    request.Content = new StreamContent(body, 256 * 1024);
                    request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-tar");
                    request.Content.Headers.ContentLength = source.TarLength;
                }

                foreach (var key in keys)
                {
                    request.Headers.TryAddWithoutValidation(BundleEndpoints.TrustHeader, Convert.ToBase64String(key.SubjectPublicKeyInfo));
                }

                try
                {
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                    var body = response.StatusCode is HttpStatusCode.OK or HttpStatusCode.UnprocessableEntity or HttpStatusCode.Conflict or HttpStatusCode.InsufficientStorage
                        ? await response.Content.ReadFromJsonAsync(BundleApiJsonContext.Default.BundleImportResult, cancellationToken).ConfigureAwait(false)
                        : null;
                    var text = body is null ? await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false) : null;
                    return (response.StatusCode, body, text);
                }
                catch (HttpRequestException ex)
                {
                    return ((HttpStatusCode)0, (BundleImportResult?)null, ex.HttpRequestError == HttpRequestError.ConnectionError ? "CONNECT: " + ex.Message : ex.Message);
                }
            }).ConfigureAwait(false);

            if (result is null && body?.SourceError is { } unreadable)
            {
                // The mirror saw the upload end early and dropped what it had staged.
                await error.WriteLineAsync($"REFUSED (Truncated): the bundle cannot be read (truncated or damaged): {unreadable.Message}. Nothing was imported.").ConfigureAwait(false);
                return 1;
            }

            if (result is null)
            {
                if (status == 0)
                {
                    var refused = failure!.StartsWith("CONNECT: ", StringComparison.Ordinal);
                    await error.WriteLineAsync(refused
                        ? $"cannot reach {server}: {failure[9..]}"
                        : $"import FAILED: the connection to {server} broke off: {failure}. Content already committed stays consistent; run the import again to finish it.").ConfigureAwait(false);
                    return refused ? 2 : 1;
                }

                await error.WriteLineAsync($"import FAILED: {server} answered {(int)status}: {failure}").ConfigureAwait(false);
                return 1;
            }

            if (result.Outcome != BundleImportOutcome.Imported)
            {
                // A refusal before the commit leaves nothing behind; a storage failure during it leaves consistent, untagged content.
                var tail = result.Refusal == BundleRefusal.StorageFailed ? "" : " Nothing was imported.";
                await error.WriteLineAsync($"REFUSED{(result.Refusal is { } r ? $" ({r})" : "")}: {result.Message}.{tail}").ConfigureAwait(false);
                return 1;
            }

            await output.WriteLineAsync(
                $"summary: imported {result.Kind} bundle {result.Sequence} of mirror {result.SourceMirrorId} " +
                $"({(result.SignedBy is { } by ? $"signed by key {by}" : "signature not checked")}): {result.Images} images, {(result.Charts > 0 ? $"{result.Charts} charts, " : "")}{result.Manifests} manifests; " +
                $"{result.BlobsImported} blobs new ({BundleCommand.Bytes(result.BytesImported)} bytes), {result.BlobsAlreadyPresent} already cached; " +
                $"{result.TagsSet} tags set{(result.TagsKept > 0 ? $", {result.TagsKept} kept (seen later here)" : "")}; pinned as '{result.PinSet}'").ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"import FAILED: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        finally
        {
            keys.ForEach(k => k.Dispose());
        }
    }

    /// <summary>Hashes nothing and keeps nothing: for <c>verify</c>.</summary>
    private sealed class DiscardingSink : IBundleSink
    {
        public ValueTask<string?> AcceptAsync(BundleManifest manifest, CancellationToken cancellationToken) => ValueTask.FromResult<string?>(null);

        public ValueTask<Stream?> OpenAsync(BundleFile file, CancellationToken cancellationToken) => ValueTask.FromResult<Stream?>(null);

        public ValueTask CompleteAsync(BundleFile file, Stream? destination, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>Calls back after each read, for the progress bar; remembers why the bundle could not be read, if it could not.</summary>
    private sealed class ProgressStream(Stream inner, Action onRead) : ReadOnlyStream
    {
        public Exception? SourceError { get; private set; }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                onRead();
                return read;
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException)
            {
                SourceError = ex;
                throw;
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
