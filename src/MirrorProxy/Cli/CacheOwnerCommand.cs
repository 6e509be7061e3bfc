using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>mirrorproxy cache-owner</c>: hands a cache directory, and everything in it, to the user the mirror runs as.
/// For an init container on a hostPath volume, where <c>fsGroup</c> does not apply, in an image that holds this
/// program and no shell. Needs CAP_CHOWN (and CAP_DAC_READ_SEARCH to enter directories it does not own); changes
/// only entries whose owner differs, never follows symbolic links. Exits 0 when done, 1 when an entry could not be
/// changed, 2 on a usage error.
/// </summary>
internal static partial class CacheOwnerCommand
{
    public static Command Create()
    {
        var path = new Option<string>("--path") { Required = true, Description = "The cache directory (created if missing)." };
        var owner = new Option<string>("--owner") { Required = true, Description = "UID:GID to own it, e.g. 10001:10001 (the pod's runAsUser and runAsGroup)." };
        var command = new Command("cache-owner", "Give a cache directory and its contents to UID:GID (init container for a hostPath cache; needs CAP_CHOWN).")
        {
            path, owner,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var text = parse.GetValue(owner)!;
            var parts = text.Split(':');
            if (parts.Length != 2 || !uint.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                || !uint.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            {
                await error.WriteLineAsync($"mirrorproxy cache-owner: --owner: '{text}' is not UID:GID (numbers, e.g. 10001:10001)").ConfigureAwait(false);
                return MirrorProxyCli.UsageError;
            }

            var root = Path.GetFullPath(parse.GetValue(path)!);
            return await RunAsync(root, uid, gid, parse.InvocationConfiguration.Output, error, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(string root, uint uid, uint gid, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(root);
        var changed = 0;
        var failed = 0;
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = pending.Pop();
            if (!TryOwner(path, out var currentUid, out var currentGid, out var errno))
            {
                failed++;
                await error.WriteLineAsync($"mirrorproxy cache-owner: cannot stat {path}: {Marshal.GetPInvokeErrorMessage(errno)}").ConfigureAwait(false);
                continue;
            }

            if (currentUid != uid || currentGid != gid)
            {
                if (Lchown(path, uid, gid) != 0)
                {
                    failed++;
                    await error.WriteLineAsync($"mirrorproxy cache-owner: cannot chown {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}").ConfigureAwait(false);
                    continue;
                }

                changed++;
            }

            var attributes = File.GetAttributes(path);
            if (attributes.HasFlag(FileAttributes.Directory) && !attributes.HasFlag(FileAttributes.ReparsePoint))
            {
                try
                {
                    foreach (var entry in Directory.EnumerateFileSystemEntries(path))
                    {
                        pending.Push(entry);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    failed++;
                    await error.WriteLineAsync($"mirrorproxy cache-owner: cannot list {path}: {ex.Message}").ConfigureAwait(false);
                }
            }
        }

        await output.WriteLineAsync($"{root}: owner {uid}:{gid}; {changed} entries changed{(failed > 0 ? $", {failed} failed" : "")}").ConfigureAwait(false);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>The owner of <paramref name="path"/> (the link itself for a symbolic link), through statx, whose layout is the same on every architecture.</summary>
    private static unsafe bool TryOwner(string path, out uint uid, out uint gid, out int errno)
    {
        const int AtFdCwd = -100;
        const int AtSymlinkNoFollow = 0x100;
        const uint StatxUid = 0x8, StatxGid = 0x10;
        var buffer = stackalloc byte[256];
        if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxUid | StatxGid, buffer) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            uid = gid = 0;
            return false;
        }

        // struct statx: u32 stx_mask, u32 stx_blksize, u64 stx_attributes, u32 stx_nlink, u32 stx_uid, u32 stx_gid, ...
        uid = *(uint*)(buffer + 20);
        gid = *(uint*)(buffer + 24);
        errno = 0;
        return true;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Lchown(string path, uint uid, uint gid);
}
