using System.Runtime.CompilerServices;

namespace MirrorProxy.Storage;

/// <summary>Documents as small files under the cache directory, written to <c>tmp/</c>, flushed and renamed into place.</summary>
internal sealed class FileMetadataStore : IMetadataStore
{
    private readonly FileContentStore _files;

    public FileMetadataStore(FileContentStore files) => _files = files;

    private string PathOf(string key)
    {
        // Keys are built from validated names; this is the last line of defence against a path outside the cache.
        if (key.Length == 0 || key[0] == '/' || key.Contains('\\') || key.Contains('\0') || key.Split('/').Any(s => s is "" or "." or ".."))
        {
            throw new ArgumentException($"'{key}' is not a document key", nameof(key));
        }

        return Path.Combine(_files.Layout.Root, key);
    }

    public async ValueTask<byte[]?> ReadAsync(string key, int maxBytes, CancellationToken cancellationToken)
    {
        try
        {
            using var handle = File.OpenHandle(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous);
            var length = RandomAccess.GetLength(handle);
            if (length > maxBytes)
            {
                return null;
            }

            var content = new byte[length];
            var read = 0;
            while (read < content.Length)
            {
                var n = await RandomAccess.ReadAsync(handle, content.AsMemory(read), read, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return null;
                }

                read += n;
            }

            return content;
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return null;
        }
    }

    public ValueTask<StorageStatus> WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        _files.WriteAtomicallyAsync(PathOf(key), content, cancellationToken);

    public ValueTask<StorageStatus> DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        try
        {
            if (!File.Exists(path))
            {
                return ValueTask.FromResult(StorageStatus.NotFound);
            }

            File.Delete(path);
            return ValueTask.FromResult(StorageStatus.Ok);
        }
        catch (Exception ex) when (StorageErrors.IsStorageFailure(ex))
        {
            return ValueTask.FromResult(StorageErrors.Classify(ex));
        }
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var directory = PathOf(prefix);
        if (!Directory.Exists(directory))
        {
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(directory))
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return Path.GetFileName(file);
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    public async IAsyncEnumerable<string> EnumerateAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var directory = PathOf(prefix);
        if (!Directory.Exists(directory))
        {
            yield break;
        }

        var root = _files.Layout.Root;
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true };
        var count = 0;
        foreach (var file in Directory.EnumerateFiles(directory, "*", options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return Path.GetRelativePath(root, file).Replace('\\', '/');
            if (++count % 256 == 0)
            {
                await Task.Yield();
            }
        }
    }
}
