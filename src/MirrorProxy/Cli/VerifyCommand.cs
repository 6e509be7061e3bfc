using System.Buffers;
using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Storage;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy verify --cache DIR</c>: re-hashes every cached object offline (the mirror stopped, or a copy of its
/// disk) and names each damaged one; with <c>--quarantine</c> moves them aside so that the mirror fetches them
/// again. Exits 0 when everything verifies, 1 when anything is damaged, 2 on usage errors.
/// </summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var cache = new Option<string>("--cache") { Required = true, Description = "The mirror's cache directory (Cache:Path)." };
        var quarantine = new Option<bool>("--quarantine") { Description = "Move damaged objects to the cache's quarantine/ directory." };
        var command = new Command("verify", "Re-hash every object in a cache directory and report the damaged ones.") { cache, quarantine };
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(cache)!, parse.GetValue(quarantine), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string directory, bool quarantine, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(Path.Combine(directory, "blobs")))
        {
            await error.WriteLineAsync($"--cache: '{directory}' is not a mirror cache (it has no blobs/ directory)").ConfigureAwait(false);
            return 2;
        }

        var store = new FileContentStore(new CacheLayout(directory), TimeProvider.System, NullLogger<FileContentStore>.Instance);
        var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        long objects = 0, bytes = 0;
        int damaged = 0, unreadable = 0;
        try
        {
            await foreach (var stored in store.EnumerateAsync(namedSince: DateTimeOffset.MinValue, fromShard: null, cancellationToken).ConfigureAwait(false))
            {
                var result = await ContentVerifier.VerifyAsync(store, stored, buffer, pace: null, cancellationToken).ConfigureAwait(false);
                objects++;
                bytes += stored.Size;
                switch (result)
                {
                    case VerifyResult.WrongSize or VerifyResult.WrongDigest:
                        damaged++;
                        var reason = result == VerifyResult.WrongSize ? QuarantineReason.Size : QuarantineReason.Digest;
                        var moved = quarantine && await store.QuarantineAsync(stored.Digest, reason, cancellationToken).ConfigureAwait(false) == StorageStatus.Ok;
                        await output.WriteLineAsync($"DAMAGED {stored.Digest} ({stored.Size} bytes): {(reason == QuarantineReason.Size ? "size changed while reading" : "bytes do not hash to the digest")}{(moved ? "; quarantined" : "")}")
                            .ConfigureAwait(false);
                        break;
                    case VerifyResult.Unreadable:
                        unreadable++;
                        await output.WriteLineAsync($"UNREADABLE {stored.Digest}").ConfigureAwait(false);
                        break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        await output.WriteLineAsync($"{objects} objects, {bytes} bytes verified: {damaged} damaged, {unreadable} unreadable").ConfigureAwait(false);
        return damaged == 0 && unreadable == 0 ? 0 : 1;
    }
}
