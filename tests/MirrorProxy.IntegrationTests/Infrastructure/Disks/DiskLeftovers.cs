namespace MirrorProxy.IntegrationTests.Infrastructure.Disks;

/// <summary>
/// Unmounting for <see cref="TmpfsDisk"/> and <see cref="FailingDisk"/>, and the removal of what runs that crashed left
/// behind: mounts, loop devices and directories under /tmp whose names (<see cref="TestRunNames"/>) belong to a run
/// that is no longer alive.
/// </summary>
internal static class DiskLeftovers
{
    private static readonly Lock s_gate = new();
    private static Task? s_removed;

    public static Task RemoveOnceAsync(CancellationToken cancellationToken)
    {
        lock (s_gate)
        {
            if (s_removed is null || s_removed.IsFaulted || s_removed.IsCanceled)
            {
                s_removed = RemoveAsync(cancellationToken);
            }

            return s_removed;
        }
    }

    public static async Task RemoveAsync(CancellationToken cancellationToken)
    {
        foreach (var mountPoint in ReadMountPoints().Where(m => LeftoverDirectory(m) is not null).OrderByDescending(m => m.Length))
        {
            await SystemCommand.TryRunAsync("umount", ["--lazy", mountPoint], cancellationToken).ConfigureAwait(false);
        }

        var loops = await SystemCommand.TryRunAsync("losetup", ["--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"], cancellationToken).ConfigureAwait(false);
        foreach (var line in loops.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', 2, StringSplitOptions.TrimEntries);
            if (fields.Length == 2 && LeftoverDirectory(fields[1]) is not null)
            {
                await SystemCommand.TryRunAsync("losetup", ["--detach", fields[0]], cancellationToken).ConfigureAwait(false);
            }
        }

        var mounted = ReadMountPoints();
        foreach (var directory in Directory.EnumerateDirectories("/tmp", TestRunNames.Prefix + "*"))
        {
            if (LeftoverDirectory(directory) is not null && !mounted.Any(m => m == directory || m.StartsWith(directory + "/", StringComparison.Ordinal)))
            {
                ShortTempDirectory.DeleteBestEffort(directory);
            }
        }
    }

    /// <summary>Unmounts <paramref name="mountPoint"/> if it is mounted; lazily when it is busy.</summary>
    public static async Task UnmountAsync(string mountPoint, CancellationToken cancellationToken)
    {
        if (!ReadMountPoints().Contains(mountPoint))
        {
            return;
        }

        var result = await SystemCommand.TryRunAsync("umount", [mountPoint], cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            await SystemCommand.RunAsync("umount", ["--lazy", mountPoint], cancellationToken).ConfigureAwait(false);
        }
    }

    public static async Task UnmountAndDeleteAsync(string mountPoint, CancellationToken cancellationToken)
    {
        await UnmountAsync(mountPoint, cancellationToken).ConfigureAwait(false);
        ShortTempDirectory.DeleteBestEffort(mountPoint);
    }

    /// <summary>The mount points in this mount namespace (<c>/proc/self/mountinfo</c>, field 5).</summary>
    public static IReadOnlyList<string> ReadMountPoints()
        => File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length > 4)
            .Select(fields => fields[4].Replace("\\040", " ", StringComparison.Ordinal))
            .ToArray();

    /// <summary>The <c>/tmp/&lt;name&gt;</c> directory holding <paramref name="path"/> when that name is a dead run's disk, else null.</summary>
    private static string? LeftoverDirectory(string path)
    {
        if (!path.StartsWith("/tmp/" + TestRunNames.Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var name = path["/tmp/".Length..].Split('/')[0];
        return TestRunNames.IsLeftover(name, TmpfsDisk.NameKind) || TestRunNames.IsLeftover(name, FailingDisk.NameKind)
            ? "/tmp/" + name
            : null;
    }
}
