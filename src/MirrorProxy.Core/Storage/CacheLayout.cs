using MirrorProxy.Oci;

namespace MirrorProxy.Storage;

/// <summary>
/// Where everything lives under the cache directory. Only the storage folder knows these paths:
/// <c>blobs/</c> (content), <c>meta/</c>-style documents (<c>tags/</c>, <c>listings/</c>, <c>pins/</c>, <c>state/</c>),
/// <c>index/</c> (FASTER), <c>tmp/</c> (writes in progress) and <c>quarantine/</c> (damaged objects).
/// </summary>
internal sealed class CacheLayout
{
    public CacheLayout(string root)
    {
        Root = Path.GetFullPath(root);
        BlobsDirectory = Path.Combine(Root, "blobs");
        TempDirectory = Path.Combine(Root, "tmp");
        QuarantineDirectory = Path.Combine(Root, "quarantine");
        IndexDirectory = Path.Combine(Root, "index");
    }

    public string Root { get; }

    public string BlobsDirectory { get; }

    public string TempDirectory { get; }

    public string QuarantineDirectory { get; }

    public string IndexDirectory { get; }

    /// <summary>Creates the layout and removes what an interrupted write left in <c>tmp/</c>. Returns the number of files removed.</summary>
    public int Initialize()
    {
        Directory.CreateDirectory(BlobsDirectory);
        Directory.CreateDirectory(TempDirectory);
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            File.Delete(file);
            removed++;
        }

        return removed;
    }

    public string BlobPath(Digest digest)
    {
        var encoded = digest.Encoded;
        return $"{BlobsDirectory}/{digest.Algorithm}/{encoded[..2]}/{encoded}";
    }

    public string NewTempPath() => Path.Combine(TempDirectory, Guid.NewGuid().ToString("N"));

    /// <summary>Free space on the cache's file system; null when it cannot be told.</summary>
    public long? FreeSpace()
    {
        try
        {
            return new DriveInfo(Root).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    private static readonly byte[] ProbeBlock = new byte[4096];

    /// <summary>
    /// Whether a block can be written in <c>tmp/</c> now (a full disk may still create empty files); the status
    /// says why not. Cheap enough for every readiness probe.
    /// </summary>
    public StorageStatus ProbeWritable(out string? error)
    {
        error = null;
        var probe = Path.Combine(TempDirectory, ".probe-" + Guid.NewGuid().ToString("N"));
        try
        {
            File.WriteAllBytes(probe, ProbeBlock);
            File.Delete(probe);
            return StorageStatus.Ok;
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            error = ex.Message;
            var status = StorageErrors.Classify(ex);
            try
            {
                File.Delete(probe);
            }
            catch (Exception cleanup) when (StorageErrors.IsStorageFailure(cleanup))
            {
                // tmp/ is emptied at the next start.
            }

            return status == StorageStatus.NotFound ? StorageStatus.IoError : status;
        }
    }
}
