namespace MirrorProxy.Storage;

/// <summary>How a storage operation ended, as a value: callers branch on it instead of catching.</summary>
internal enum StorageStatus
{
    Ok,
    NotFound,
    /// <summary>A commit found the object already stored (content is immutable: nothing was lost).</summary>
    AlreadyExists,
    /// <summary>What was written does not hash to its digest, or its size is not the one announced or indexed.</summary>
    Mismatch,
    /// <summary>The file system is full (ENOSPC, EDQUOT).</summary>
    NoSpace,
    /// <summary>The file system is mounted read-only (EROFS), or writing is not permitted.</summary>
    ReadOnly,
    /// <summary>Any other I/O failure (EIO from a damaged disk, say).</summary>
    IoError,
    /// <summary>A remote store could not be reached, or did not answer in time.</summary>
    Unavailable,
}

/// <summary>Turns the exceptions file APIs throw into <see cref="StorageStatus"/> values.</summary>
internal static class StorageErrors
{
    // On Unix the runtime puts the raw errno into IOException.HResult.
    private const int Enospc = 28;
    private const int Erofs = 30;
    private const int Edquot = 122;

    /// <summary>True for the exceptions a file operation throws when the storage fails (as opposed to a bug).</summary>
    public static bool IsStorageFailure(Exception exception) => exception is IOException or UnauthorizedAccessException;

    public static StorageStatus Classify(Exception exception) => exception switch
    {
        FileNotFoundException or DirectoryNotFoundException => StorageStatus.NotFound,
        UnauthorizedAccessException => StorageStatus.ReadOnly,
        IOException io => FromErrno(io.HResult),
        _ => StorageStatus.IoError,
    };

    /// <summary>What an errno from a failed file-system call means for storage (also a raw errno from a native call).</summary>
    public static StorageStatus FromErrno(int errno) => errno switch
    {
        Enospc or Edquot => StorageStatus.NoSpace,
        Erofs => StorageStatus.ReadOnly,
        _ => StorageStatus.IoError,
    };

    /// <summary>True for the outcomes that mean the cache cannot take new content right now.</summary>
    public static bool IsWriteFault(StorageStatus status) => status is StorageStatus.NoSpace or StorageStatus.ReadOnly or StorageStatus.IoError or StorageStatus.Unavailable;

    /// <summary>What happened, in words for a person (an error message), where <see cref="Label"/> is for machines.</summary>
    public static string Describe(StorageStatus status) => status switch
    {
        StorageStatus.NoSpace => "the cache's disk is full",
        StorageStatus.ReadOnly => "the cache's disk is read-only",
        StorageStatus.IoError => "the cache's disk failed (I/O error)",
        StorageStatus.Unavailable => "the store did not answer",
        StorageStatus.Mismatch => "what was written does not match its digest or size",
        StorageStatus.NotFound => "not found",
        StorageStatus.AlreadyExists => "already stored",
        _ => "ok",
    };

    /// <summary>A label for metrics and logs.</summary>
    public static string Label(StorageStatus status) => status switch
    {
        StorageStatus.NoSpace => "no_space",
        StorageStatus.ReadOnly => "read_only",
        StorageStatus.IoError => "io",
        StorageStatus.Unavailable => "unavailable",
        StorageStatus.Mismatch => "mismatch",
        StorageStatus.NotFound => "not_found",
        StorageStatus.AlreadyExists => "already_exists",
        _ => "ok",
    };
}
