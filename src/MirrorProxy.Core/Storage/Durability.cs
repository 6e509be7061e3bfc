using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MirrorProxy.Storage;

/// <summary>
/// Makes written bytes durable, and says so truthfully. On Linux this calls fsync(2) itself: the runtime's
/// <see cref="RandomAccess.FlushToDisk"/> was seen to return normally when fsync failed with EIO (a dying SD
/// card), and a write whose flush failed must never be published.
/// </summary>
internal static partial class Durability
{
    private const int Einval = 22;
    private const int Espipe = 29;
    private const int Enosys = 38;
    private const int Eopnotsupp = 95;

    private const uint SyncFileRangeWaitBefore = 1;
    private const uint SyncFileRangeWrite = 2;
    private const uint SyncFileRangeWaitAfter = 4;
    private const int PosixFadvDontNeed = 4;

    /// <summary>
    /// Hands <paramref name="count"/> written bytes at <paramref name="offset"/> to the disk now, without waiting
    /// (sync_file_range with SYNC_FILE_RANGE_WRITE), so that the flush before the commit finds little left to do.
    /// Not a durability point: <see cref="Flush"/> still is. Ok where the call is not supported (not Linux, a file
    /// system without it).
    /// </summary>
    public static StorageStatus StartWriteback(SafeFileHandle handle, long offset, long count) =>
        OperatingSystem.IsLinux() && SyncFileRange(handle, offset, count, SyncFileRangeWrite) != 0 ? ClassifyWriteback(Marshal.GetLastPInvokeError()) : StorageStatus.Ok;

    /// <summary>
    /// Waits until the bytes at <paramref name="offset"/> are on the disk and lets the kernel drop them from memory
    /// (nobody reads them before the commit). A write error seen here is reported here, and only here (the kernel
    /// tells each error once per file), so the caller must not publish the file after a failure.
    /// </summary>
    public static StorageStatus FinishWriteback(SafeFileHandle handle, long offset, long count)
    {
        if (!OperatingSystem.IsLinux())
        {
            return StorageStatus.Ok;
        }

        if (SyncFileRange(handle, offset, count, SyncFileRangeWaitBefore | SyncFileRangeWrite | SyncFileRangeWaitAfter) != 0)
        {
            return ClassifyWriteback(Marshal.GetLastPInvokeError());
        }

        // Advice only: the pages are clean now, and a failure to drop them costs memory, not correctness.
        _ = PosixFadvise(handle, offset, count, PosixFadvDontNeed);
        return StorageStatus.Ok;
    }

    public static StorageStatus Flush(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux())
        {
            RandomAccess.FlushToDisk(handle);
            return StorageStatus.Ok;
        }

        if (Fsync(handle) == 0)
        {
            return StorageStatus.Ok;
        }

        return StorageErrors.FromErrno(Marshal.GetLastPInvokeError());
    }

    /// <summary>A file system that cannot start writeback early is fine: the flush before the commit still runs.</summary>
    private static StorageStatus ClassifyWriteback(int errno) => errno is Einval or Espipe or Enosys or Eopnotsupp ? StorageStatus.Ok : StorageErrors.FromErrno(errno);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(SafeFileHandle handle);

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle handle, long offset, long count, uint flags);

    /// <summary>Returns the error number rather than setting errno.</summary>
    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle handle, long offset, long count, int advice);
}
