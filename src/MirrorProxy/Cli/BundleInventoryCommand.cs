using System.CommandLine;
using MirrorProxy.Bundles;

namespace MirrorProxy.Cli;

/// <summary><c>mirrorproxy bundle inventory</c>: saves what an island's mirror holds, for cutting the next delta.</summary>
internal static class BundleInventoryCommand
{
    public static Command Create()
    {
        var server = ClientOptions.Server();
        var output = new Option<string>("--output") { Required = true, Description = "File to write the inventory to (carry it to the connected side)." };
        var tokenFile = BundleCommand.TokenFile();
        var ca = ClientOptions.Ca();
        var command = new Command("inventory", "Save the list of content a mirror holds, so that the next bundle carries only what it lacks.") { server, output, tokenFile, ca };
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(server)!, parse.GetValue(output)!, parse.GetValue(tokenFile), parse.GetValue(ca), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(Uri server, string output, string? tokenFile, string? caFile, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        using var trust = await BundleCommand.LoadMirrorTrustAsync(caFile, stderr).ConfigureAwait(false);
        if (trust is null)
        {
            return 2;
        }

        var partial = output + ".partial";
        try
        {
            using var http = await ClientOptions.CreateAdminClientAsync(server, trust, tokenFile, cancellationToken).ConfigureAwait(false);
            using (var response = await http.GetAsync("/admin/bundles/inventory", HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false))
            {
                if (!response.IsSuccessStatusCode)
                {
                    await stderr.WriteLineAsync($"{server} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}").ConfigureAwait(false);
                    return 1;
                }

                await using var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
                await response.Content.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            }

            // Read it back as the exporter will: a complete inventory, or nothing.
            InventoryHeader? header;
            string error;
            await using (var check = new FileStream(partial, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            {
                (header, error) = await Inventory.ReadAsync(check, static _ => { }, cancellationToken).ConfigureAwait(false);
            }

            if (header is null)
            {
                File.Delete(partial);
                await stderr.WriteLineAsync($"the inventory from {server} is not complete: {error}").ConfigureAwait(false);
                return 1;
            }

            File.Move(partial, output, overwrite: true);
            await stdout.WriteLineAsync($"inventory of mirror {header.MirrorId}: {header.Count} objects, {BundleCommand.Bytes(new FileInfo(output).Length)} bytes, written to {output}").ConfigureAwait(false);
            return 0;
        }
        catch (HttpRequestException ex)
        {
            File.Delete(partial);
            await stderr.WriteLineAsync($"cannot take the inventory of {server}: {trust.Describe(ex)}").ConfigureAwait(false);
            return ex.HttpRequestError == HttpRequestError.ConnectionError ? 2 : 1;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(partial);
            await stderr.WriteLineAsync($"--output: cannot write '{output}': {ex.Message}").ConfigureAwait(false);
            return 2;
        }
    }
}
