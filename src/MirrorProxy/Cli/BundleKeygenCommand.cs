using System.CommandLine;
using MirrorProxy.Bundles;

namespace MirrorProxy.Cli;

/// <summary><c>mirrorproxy bundle keygen</c>: a new ECDSA P-256 signing key pair, as openssl would write it.</summary>
internal static class BundleKeygenCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output") { Required = true, Description = "Name of the pair: NAME.pem (private, mode 0600) and NAME.pub (public)." };
        var command = new Command("keygen", "Create a signing key pair for bundles (ECDSA P-256, PEM).") { output };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(output)!, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string output, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var privatePath = output + ".pem";
        var publicPath = output + ".pub";
        if (File.Exists(privatePath) || File.Exists(publicPath))
        {
            await stderr.WriteLineAsync($"--output: {privatePath} or {publicPath} already exists; a key is never overwritten").ConfigureAwait(false);
            return 1;
        }

        var (privatePem, publicPem) = BundleSigning.GenerateKeyPair();
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            await using (var file = new StreamWriter(privatePath, options))
            {
                await file.WriteAsync(privatePem.AsMemory(), cancellationToken).ConfigureAwait(false);
            }

            await File.WriteAllTextAsync(publicPath, publicPem, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"--output: cannot write the key pair: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        using var key = BundleSigning.LoadPublicKey(publicPem, out _)!;
        await stdout.WriteLineAsync($"wrote {privatePath} (keep it on the connected side) and {publicPath} (give it to islands with --trust); key id {key.Id}").ConfigureAwait(false);
        return 0;
    }
}
