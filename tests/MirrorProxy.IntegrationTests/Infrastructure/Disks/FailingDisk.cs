using System.ComponentModel;
using System.Runtime.InteropServices;

namespace MirrorProxy.IntegrationTests.Infrastructure.Disks;

/// <summary>
/// A disk that dies on demand: ext4 on a loop device over a sparse file, mounted at a fresh directory. After
/// <see cref="FailAsync"/> every read, write, open and fsync on it fails with EIO, as when the device under a
/// filesystem goes away; <see cref="RecoverAsync"/> mounts it again, as after a reboot. Removed on dispose.
/// </summary>
/// <remarks>
/// The failure is ext4's shutdown ioctl (<c>EXT4_IOC_SHUTDOWN</c>, what <c>xfs_io -c shutdown</c> sends), which needs
/// nothing but the loop driver and ext4. Device-mapper targets (dm-error, dm-flakey) would fail single blocks or
/// fail intermittently, but this kernel is built without device-mapper (no CONFIG_MD, no /dev/mapper/control), and
/// modules cannot be loaded here.
/// </remarks>
internal sealed partial class FailingDisk : IAsyncDisposable
{
    public const string NameKind = "ext4";

    private const uint Ext4ShutdownIoctl = 0x8004587D; // _IOR('X', 125, __u32)
    private const uint ShutdownNoLogFlush = 2;         // EXT4_GOING_FLAGS_NOLOGFLUSH: as sudden as a pulled disk
    private const int OpenReadOnlyCloseOnExec = 0x80000;

    private readonly string _directory;
    private readonly string _image;
    private string? _device;
    private int _disposed;

    private FailingDisk(string directory)
    {
        _directory = directory;
        _image = System.IO.Path.Combine(directory, "disk.img");
        Path = System.IO.Path.Combine(directory, "mnt");
    }

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>The loop device (<c>/dev/loopN</c>).</summary>
    public string Device => _device ?? throw new InvalidOperationException("Not attached.");

    public bool HasFailed { get; private set; }

    /// <summary>Creates, formats and mounts a disk of <paramref name="sizeBytes"/> (at least 16 MiB for ext4's metadata).</summary>
    public static async Task<FailingDisk> MountAsync(long sizeBytes = 64L * 1024 * 1024, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sizeBytes, 16L * 1024 * 1024);
        await DiskLeftovers.RemoveOnceAsync(cancellationToken).ConfigureAwait(false);
        var directory = System.IO.Path.Combine("/tmp", TestRunNames.Next(NameKind));
        Directory.CreateDirectory(directory);
        var disk = new FailingDisk(directory);
        try
        {
            Directory.CreateDirectory(disk.Path);
            await using (var image = new FileStream(disk._image, FileMode.CreateNew, FileAccess.Write))
            {
                image.SetLength(sizeBytes);
            }

            await SystemCommand.RunAsync("mkfs.ext4", ["-q", "-F", "-E", "nodiscard", disk._image], cancellationToken).ConfigureAwait(false);
            var attached = await SystemCommand.RunAsync("losetup", ["--find", "--show", disk._image], cancellationToken).ConfigureAwait(false);
            disk._device = attached.StandardOutput.Trim();
            await disk.MountDeviceAsync(cancellationToken).ConfigureAwait(false);
            return disk;
        }
        catch
        {
            await disk.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Shuts the filesystem down without flushing its journal: from now on its I/O fails with EIO.</summary>
    public Task FailAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var fd = Open(Path, OpenReadOnlyCloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new Win32Exception(errno, $"open({Path}) failed with errno {errno}.");
        }

        try
        {
            var flags = ShutdownNoLogFlush;
            if (Ioctl(fd, Ext4ShutdownIoctl, ref flags) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new Win32Exception(errno, $"ioctl(EXT4_IOC_SHUTDOWN) on {Path} failed with errno {errno}.");
            }
        }
        finally
        {
            Close(fd);
        }

        HasFailed = true;
        return Task.CompletedTask;
    }

    /// <summary>Unmounts the failed filesystem and mounts it again (ext4 replays its journal): the disk is back.</summary>
    public async Task RecoverAsync(CancellationToken cancellationToken = default)
    {
        await DiskLeftovers.UnmountAsync(Path, cancellationToken).ConfigureAwait(false);
        await MountDeviceAsync(cancellationToken).ConfigureAwait(false);
        HasFailed = false;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await DiskLeftovers.UnmountAsync(Path, CancellationToken.None).ConfigureAwait(false);
        if (_device is not null)
        {
            await SystemCommand.TryRunAsync("losetup", ["--detach", _device], CancellationToken.None).ConfigureAwait(false);
        }

        ShortTempDirectory.DeleteBestEffort(_directory);
    }

    public override string ToString() => $"ext4 {Path} on {_device ?? "(no device)"}{(HasFailed ? ", failed" : string.Empty)}";

    private Task MountDeviceAsync(CancellationToken cancellationToken)
        => SystemCommand.RunAsync("mount", ["-t", "ext4", Device, Path], cancellationToken);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nuint request, ref uint argument);
}
