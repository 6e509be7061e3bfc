using System.Runtime.InteropServices;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Disks;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>Small disks that fill up, turn read-only or die, and the classification of the errors they give.</summary>
public sealed partial class CacheDiskTests
{
    private const int KiB = 1024;
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task Tmpfs_WritePastItsSize_FailsWithNoSpace_AndDeletingMakesRoom()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var disk = await TmpfsDisk.MountAsync(1 * MiB, cts.Token);
        var path = disk.Combine("too-big");

        var failure = await Assert.ThrowsAsync<IOException>(() => File.WriteAllBytesAsync(path, new byte[2 * MiB], cts.Token));

        Assert.Equal(IoErrors.NoSpace, failure.HResult);
        Assert.Equal(IoErrorKind.NoSpace, IoErrors.Classify(failure));
        File.Delete(path);
        await File.WriteAllBytesAsync(path, new byte[512 * KiB], cts.Token);
    }

    [Fact]
    public async Task Tmpfs_Fill_LeavesTheBytesAskedFor_ThenNone()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var disk = await TmpfsDisk.MountAsync(4 * MiB, cts.Token);

        await disk.FillAsync(leaveFreeBytes: 256 * KiB, cts.Token);
        Assert.InRange(disk.AvailableBytes, 256 * KiB, (256 * KiB) + Environment.SystemPageSize - 1);
        await File.WriteAllBytesAsync(disk.Combine("fits"), new byte[128 * KiB], cts.Token);
        var failure = await Assert.ThrowsAsync<IOException>(() => File.WriteAllBytesAsync(disk.Combine("does-not-fit"), new byte[512 * KiB], cts.Token));
        Assert.Equal(IoErrorKind.NoSpace, IoErrors.Classify(failure));

        await disk.FillAsync(cancellationToken: cts.Token);
        Assert.Equal(0, disk.AvailableBytes);
        failure = await Assert.ThrowsAsync<IOException>(() => File.WriteAllBytesAsync(disk.Combine("one-page"), new byte[Environment.SystemPageSize], cts.Token));
        Assert.Equal(IoErrorKind.NoSpace, IoErrors.Classify(failure));

        disk.DeleteFill();
        Assert.True(disk.AvailableBytes > 3 * MiB, $"{disk.AvailableBytes} bytes free after deleting the fill");
    }

    [Fact]
    public async Task Tmpfs_RemountedReadOnly_WritesFailWithReadOnly_ReadsWork_ReadWriteRestores()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var disk = await TmpfsDisk.MountAsync(1 * MiB, cts.Token);
        var existing = disk.Combine("existing");
        await File.WriteAllTextAsync(existing, "cached bytes", cts.Token);

        await disk.RemountReadOnlyAsync(cts.Token);

        Assert.True(disk.IsReadOnly);
        Assert.Equal("cached bytes", await File.ReadAllTextAsync(existing, cts.Token));
        var create = await Assert.ThrowsAsync<IOException>(() => File.WriteAllTextAsync(disk.Combine("new"), "x", cts.Token));
        Assert.Equal(IoErrors.ReadOnly, create.HResult);
        Assert.Equal(IoErrorKind.ReadOnly, IoErrors.Classify(create));
        Assert.Equal(IoErrorKind.ReadOnly, IoErrors.Classify(Assert.Throws<IOException>(() => File.AppendAllText(existing, "more"))));
        Assert.Equal(IoErrorKind.ReadOnly, IoErrors.Classify(Assert.Throws<IOException>(() => Directory.CreateDirectory(disk.Combine("dir")))));
        Assert.Equal(IoErrorKind.ReadOnly, IoErrors.Classify(Assert.Throws<IOException>(() => File.Delete(existing))));

        await disk.RemountReadWriteAsync(cts.Token);
        await File.WriteAllTextAsync(disk.Combine("new"), "x", cts.Token);

        // The kernel will not make a filesystem read-only under a file open for writing.
        await using (var writer = new FileStream(disk.Combine("open"), FileMode.Create, FileAccess.Write))
        {
            await Assert.ThrowsAsync<InvalidOperationException>(() => disk.RemountReadOnlyAsync(cts.Token));
            Assert.False(disk.IsReadOnly);
        }
    }

    [Fact]
    public async Task Tmpfs_Dispose_UnmountsEvenWhenBusy_AndRemovesTheDirectory()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var disk = await TmpfsDisk.MountAsync(1 * MiB, cts.Token);
        Assert.Contains(disk.Path, DiskLeftovers.ReadMountPoints());
        await using var held = new FileStream(disk.Combine("held"), FileMode.Create, FileAccess.ReadWrite);

        await disk.DisposeAsync();

        Assert.DoesNotContain(disk.Path, DiskLeftovers.ReadMountPoints());
        Assert.False(Directory.Exists(disk.Path));
        await held.WriteAsync(new byte[16], cts.Token); // the detached filesystem lives on for the handle that holds it
    }

    [Fact]
    public async Task Leftovers_OfADeadRunAreUnmountedAndRemoved_ThoseOfLiveRunsAreKept()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var dead = $"/tmp/{TestRunNames.Prefix}{TmpfsDisk.NameKind}-{Environment.ProcessId}-1-1";
        var live = $"/tmp/{TestRunNames.Prefix}{TmpfsDisk.NameKind}-{TestRunNames.Run}-{int.MaxValue}";
        try
        {
            Directory.CreateDirectory(dead);
            Directory.CreateDirectory(live);
            await SystemCommand.RunAsync("mount", ["-t", "tmpfs", "-o", "size=65536", Path.GetFileName(dead), dead], cts.Token);
            await SystemCommand.RunAsync("mount", ["-t", "tmpfs", "-o", "size=65536", Path.GetFileName(live), live], cts.Token);

            await DiskLeftovers.RemoveAsync(cts.Token);

            var mounts = DiskLeftovers.ReadMountPoints();
            Assert.DoesNotContain(dead, mounts);
            Assert.False(Directory.Exists(dead));
            Assert.Contains(live, mounts);
        }
        finally
        {
            await DiskLeftovers.UnmountAndDeleteAsync(dead, CancellationToken.None);
            await DiskLeftovers.UnmountAndDeleteAsync(live, CancellationToken.None);
        }
    }

    [Fact]
    public async Task FailingDisk_AfterFail_EveryOperationFailsWithDeviceError_RecoverBringsItBack()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string device;
        var disk = await FailingDisk.MountAsync(cancellationToken: cts.Token);
        try
        {
            device = disk.Device;
            var existing = disk.Combine("blob");
            var content = DeterministicData.Bytes("failing-disk", 256 * KiB);
            await using (var file = new FileStream(existing, FileMode.CreateNew, FileAccess.Write))
            {
                await file.WriteAsync(content, cts.Token);
                file.Flush(flushToDisk: true);
            }

            await using var open = new FileStream(disk.Combine("in-progress"), FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
            await open.WriteAsync(new byte[4 * KiB], cts.Token);

            await disk.FailAsync(cts.Token);

            Assert.True(disk.HasFailed);
            var read = await Assert.ThrowsAsync<IOException>(() => File.ReadAllBytesAsync(existing, cts.Token));
            Assert.Equal(IoErrors.DeviceError, read.HResult);
            Assert.Equal(IoErrorKind.DeviceError, IoErrors.Classify(read));
            Assert.Equal(IoErrorKind.DeviceError, IoErrors.Classify(await Assert.ThrowsAsync<IOException>(() => File.WriteAllBytesAsync(disk.Combine("new"), new byte[16], cts.Token))));
            Assert.Equal(IoErrorKind.DeviceError, IoErrors.Classify(await Assert.ThrowsAsync<IOException>(() => open.WriteAsync(new byte[4 * KiB], cts.Token).AsTask())));
            Assert.Equal(IoErrors.DeviceError, FsyncErrno(open.SafeFileHandle));

            // The runtime (10.0.12) drops the fsync's EIO: a durable write cannot rely on Flush(true) to report it.
            open.Flush(flushToDisk: true);
            RandomAccess.FlushToDisk(open.SafeFileHandle);

            await open.DisposeAsync();
            await disk.RecoverAsync(cts.Token);

            Assert.False(disk.HasFailed);
            Assert.Equal(content, await File.ReadAllBytesAsync(existing, cts.Token));
            await File.WriteAllBytesAsync(disk.Combine("new"), new byte[16], cts.Token);
        }
        finally
        {
            await disk.DisposeAsync();
        }

        Assert.DoesNotContain(disk.Path, DiskLeftovers.ReadMountPoints());
        var loops = await SystemCommand.RunAsync("losetup", ["--list", "--noheadings", "--output", "NAME"], cts.Token);
        Assert.DoesNotContain(device, loops.StandardOutput.Split('\n', StringSplitOptions.TrimEntries));
    }

    /// <summary>fsync(2) itself: 0, or the errno it failed with.</summary>
    private static int FsyncErrno(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
        => Fsync((int)handle.DangerousGetHandle()) == 0 ? 0 : Marshal.GetLastPInvokeError();

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [Fact]
    public void Classify_ErrorsThatSayNothingAboutTheDisk_AreOther()
    {
        using var directory = ShortTempDirectory.Create("ioerr-");
        var path = directory.Combine("exists");
        File.WriteAllText(path, "x");

        var clash = Assert.Throws<IOException>(() => new FileStream(path, FileMode.CreateNew));
        Assert.Equal(IoErrorKind.Other, IoErrors.Classify(clash));
        Assert.Equal(IoErrorKind.Other, IoErrors.Classify(Assert.Throws<FileNotFoundException>(() => File.ReadAllBytes(directory.Combine("missing")))));
        Assert.Equal(IoErrorKind.NoSpace, IoErrors.Classify(new HttpRequestException("wrapped", new IOException("disk full", IoErrors.NoSpace))));
    }
}
