namespace MirrorProxy.IntegrationTests.Infrastructure.Disks;

/// <summary>What a failed file operation says about the disk under it.</summary>
internal enum IoErrorKind
{
    /// <summary>Any other failure (a missing file, a name clash, a bad handle...): nothing to say about the disk.</summary>
    Other,

    /// <summary>ENOSPC (28) or EDQUOT (122): the disk, or the quota on it, is full.</summary>
    NoSpace,

    /// <summary>EROFS (30): the filesystem is mounted read-only.</summary>
    ReadOnly,

    /// <summary>EIO (5): the device failed the operation.</summary>
    DeviceError,
}

/// <summary>
/// Classifies an <see cref="IOException"/> from a file operation by the errno behind it. On Unix .NET raises an errno it
/// has no dedicated exception for (ENOSPC, EROFS, EIO, EDQUOT among them) as an <see cref="IOException"/> whose
/// <see cref="Exception.HResult"/> is the raw errno; these numbers are Linux's (x86-64 and arm64 agree).
/// </summary>
internal static class IoErrors
{
    public const int DeviceError = 5;     // EIO
    public const int NoSpace = 28;        // ENOSPC
    public const int ReadOnly = 30;       // EROFS
    public const int QuotaExceeded = 122; // EDQUOT

    public static IoErrorKind Classify(IOException exception) => exception.HResult switch
    {
        NoSpace or QuotaExceeded => IoErrorKind.NoSpace,
        ReadOnly => IoErrorKind.ReadOnly,
        DeviceError => IoErrorKind.DeviceError,
        _ => IoErrorKind.Other,
    };

    /// <summary>The kind of the first <see cref="IOException"/> in <paramref name="exception"/> or its inner exceptions; Other when there is none.</summary>
    public static IoErrorKind Classify(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is IOException io && Classify(io) is not IoErrorKind.Other and var kind)
            {
                return kind;
            }
        }

        return IoErrorKind.Other;
    }
}
