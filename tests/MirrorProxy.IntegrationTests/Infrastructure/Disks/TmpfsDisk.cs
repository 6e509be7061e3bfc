using System.Globalization;

namespace MirrorProxy.IntegrationTests.Infrastructure.Disks;

/// <summary>
/// A small disk of its own for a cache: a tmpfs of a given size mounted at a fresh directory, that a test can fill to
/// ENOSPC and remount read-only. Unmounted (lazily, if something still holds it) and removed on dispose.
/// </summary>
/// <remarks>
/// The kernel refuses to remount a filesystem read-only while a file on it is open for writing (EBUSY), so
/// <see cref="RemountReadOnlyAsync"/> throws then; writes fail with EROFS only once the mount is read-only.
/// </remarks>
internal sealed class TmpfsDisk : IAsyncDisposable
{
    public const string NameKind = "tmpfs";
    private const string FillPrefix = ".fill-";

    private int _fills;
    private int _disposed;

    private TmpfsDisk(string path, long sizeBytes)
    {
        Path = path;
        SizeBytes = sizeBytes;
    }

    /// <summary>The mount point: <c>/tmp/mirrorproxy-test-tmpfs-&lt;run&gt;-&lt;n&gt;</c>.</summary>
    public string Path { get; }

    public long SizeBytes { get; }

    /// <summary>Bytes a write can still take (statvfs).</summary>
    public long AvailableBytes => new DriveInfo(Path).AvailableFreeSpace;

    public bool IsReadOnly { get; private set; }

    /// <summary>Mounts a tmpfs of <paramref name="sizeBytes"/> (rounded up to whole pages by the kernel).</summary>
    public static async Task<TmpfsDisk> MountAsync(long sizeBytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sizeBytes, 4096);
        await DiskLeftovers.RemoveOnceAsync(cancellationToken).ConfigureAwait(false);
        var name = TestRunNames.Next(NameKind);
        var path = System.IO.Path.Combine("/tmp", name);
        Directory.CreateDirectory(path);
        var disk = new TmpfsDisk(path, sizeBytes);
        try
        {
            // The source names the mount after its run too, so /proc/mounts tells whose it is.
            await SystemCommand.RunAsync(
                "mount",
                ["-t", "tmpfs", "-o", $"size={sizeBytes.ToString(CultureInfo.InvariantCulture)},mode=0755", name, path],
                cancellationToken).ConfigureAwait(false);
            return disk;
        }
        catch
        {
            await disk.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>
    /// Fills the disk with a file of its own until only <paramref name="leaveFreeBytes"/> are left (rounded down to
    /// whole pages); with 0, until a write fails with ENOSPC. Returns the bytes written. <see cref="DeleteFill"/> undoes it.
    /// </summary>
    public async Task<long> FillAsync(long leaveFreeBytes = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(leaveFreeBytes);
        var target = Math.Max(0, AvailableBytes - leaveFreeBytes) / Environment.SystemPageSize * Environment.SystemPageSize;
        var path = Combine(FillPrefix + Interlocked.Increment(ref _fills).ToString(CultureInfo.InvariantCulture));
        var chunk = new byte[1024 * 1024];
        Array.Fill(chunk, (byte)0xA5);
        long written = 0;
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        while (written < target)
        {
            var count = (int)Math.Min(chunk.Length, target - written);
            try
            {
                await file.WriteAsync(chunk.AsMemory(0, count), cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex) when (leaveFreeBytes == 0 && IoErrors.Classify(ex) == IoErrorKind.NoSpace)
            {
                // Something else on the disk (the mirror's own writes) took space since it was measured: it is full.
                return written;
            }

            written += count;
        }

        if (leaveFreeBytes == 0)
        {
            // statvfs and the allocator may disagree by a page or so: write on until the disk says it is full.
            while (true)
            {
                try
                {
                    await file.WriteAsync(chunk.AsMemory(0, Environment.SystemPageSize), cancellationToken).ConfigureAwait(false);
                    written += Environment.SystemPageSize;
                }
                catch (IOException ex) when (IoErrors.Classify(ex) == IoErrorKind.NoSpace)
                {
                    break;
                }
            }
        }

        return written;
    }

    /// <summary>Deletes what <see cref="FillAsync"/> wrote.</summary>
    public void DeleteFill()
    {
        foreach (var file in Directory.EnumerateFiles(Path, FillPrefix + "*"))
        {
            File.Delete(file);
        }
    }

    /// <summary><c>mount -o remount,ro</c>: writes fail with EROFS, reads go on. Throws while a file is open for writing.</summary>
    public async Task RemountReadOnlyAsync(CancellationToken cancellationToken = default)
    {
        await SystemCommand.RunAsync("mount", ["-o", "remount,ro", Path], cancellationToken).ConfigureAwait(false);
        IsReadOnly = true;
    }

    /// <summary><c>mount -o remount,rw</c>.</summary>
    public async Task RemountReadWriteAsync(CancellationToken cancellationToken = default)
    {
        await SystemCommand.RunAsync("mount", ["-o", "remount,rw", Path], cancellationToken).ConfigureAwait(false);
        IsReadOnly = false;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await DiskLeftovers.UnmountAndDeleteAsync(Path, CancellationToken.None).ConfigureAwait(false);
    }

    public override string ToString() => $"tmpfs {Path} ({SizeBytes} bytes{(IsReadOnly ? ", read-only" : string.Empty)})";
}
