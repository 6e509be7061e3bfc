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
    private const int Eio = 5;
    private const int Enospc = 28;
    private const int Erofs = 30;
    private const int Edquot = 122;

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

        return Marshal.GetLastPInvokeError() switch
        {
            Enospc or Edquot => StorageStatus.NoSpace,
            Erofs => StorageStatus.ReadOnly,
            Eio => StorageStatus.IoError,
            _ => StorageStatus.IoError,
        };
    }

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(SafeFileHandle handle);
}
