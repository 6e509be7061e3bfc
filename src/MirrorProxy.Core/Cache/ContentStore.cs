using System.Text;
using System.Text.Json;
using MirrorProxy.Oci;

namespace MirrorProxy.Cache;

/// <summary>What the cache knows of one content object.</summary>
/// <param name="Size">Exact size in bytes.</param>
/// <param name="MediaType">Media type of a manifest; null for plain blobs.</param>
internal readonly record struct ContentEntry(long Size, string? MediaType);

/// <summary>A tag as last seen upstream.</summary>
internal sealed record TagRecord(Digest Digest, string MediaType, long Size, DateTimeOffset FetchedAt);

/// <summary>
/// The files, which are the truth of the cache. Content is addressed by digest
/// (<c>blobs/sha256/ab/abcd…</c>, with a <c>.type</c> file beside manifests), tags are small JSON files
/// (<c>tags/&lt;upstream&gt;/&lt;repository&gt;/_tags/&lt;tag&gt;</c>), and everything is written to <c>tmp/</c>, flushed,
/// then renamed into place, so a crash leaves either the old state or the new one.
/// </summary>
internal sealed class ContentStore
{
    private const string TypeSuffix = ".type";

    public ContentStore(string root)
    {
        Root = Path.GetFullPath(root);
        BlobsDirectory = Path.Combine(Root, "blobs");
        TagsDirectory = Path.Combine(Root, "tags");
        ListingsDirectory = Path.Combine(Root, "listings");
        TempDirectory = Path.Combine(Root, "tmp");
        IndexDirectory = Path.Combine(Root, "index");
    }

    public string Root { get; }

    public string BlobsDirectory { get; }

    public string TagsDirectory { get; }

    public string ListingsDirectory { get; }

    public string TempDirectory { get; }

    public string IndexDirectory { get; }

    /// <summary>Creates the layout and removes what an interrupted write left in <c>tmp/</c>. Returns the number of files removed.</summary>
    public int Initialize()
    {
        Directory.CreateDirectory(BlobsDirectory);
        Directory.CreateDirectory(TagsDirectory);
        Directory.CreateDirectory(ListingsDirectory);
        Directory.CreateDirectory(TempDirectory);
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            File.Delete(file);
            removed++;
        }

        return removed;
    }

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

    public string BlobPath(Digest digest)
    {
        var encoded = digest.Encoded;
        return $"{BlobsDirectory}/{digest.Algorithm}/{encoded[..2]}/{encoded}";
    }

    public string NewTempPath() => Path.Combine(TempDirectory, Guid.NewGuid().ToString("N"));

    public bool TryStat(Digest digest, out long size)
    {
        var info = new FileInfo(BlobPath(digest));
        size = info.Exists ? info.Length : 0;
        return info.Exists;
    }

    public string? ReadMediaType(Digest digest)
    {
        var path = BlobPath(digest) + TypeSuffix;
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    /// <summary>Moves a verified temporary file to its content address.</summary>
    public void Publish(string tempPath, Digest digest)
    {
        var path = BlobPath(digest);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.Move(tempPath, path, overwrite: true);
    }

    /// <summary>Stores a manifest: the media type first, then the bytes, each atomically.</summary>
    public async Task PutManifestAsync(Digest digest, ReadOnlyMemory<byte> content, string mediaType, CancellationToken cancellationToken)
    {
        var path = BlobPath(digest);
        await WriteAtomicallyAsync(path + TypeSuffix, Encoding.UTF8.GetBytes(mediaType), cancellationToken).ConfigureAwait(false);
        await WriteAtomicallyAsync(path, content, cancellationToken).ConfigureAwait(false);
    }

    public void Delete(Digest digest)
    {
        var path = BlobPath(digest);
        File.Delete(path);
        File.Delete(path + TypeSuffix);
    }

    public string TagPath(string upstream, string repository, string tag) =>
        string.Concat(TagsDirectory, "/", upstream, "/", repository, "/_tags/", tag);

    public async Task PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("digest", record.Digest.Value);
            writer.WriteString("mediaType", record.MediaType);
            writer.WriteNumber("size", record.Size);
            writer.WriteString("fetchedAt", record.FetchedAt);
            writer.WriteEndObject();
        }

        await WriteAtomicallyAsync(TagPath(upstream, repository, tag), buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    public TagRecord? ReadTag(string upstream, string repository, string tag) => ReadTagFile(TagPath(upstream, repository, tag));

    public void DeleteTag(string upstream, string repository, string tag) => File.Delete(TagPath(upstream, repository, tag));

    /// <summary>Names of the tags stored for one repository.</summary>
    public IEnumerable<string> ListTags(string upstream, string repository)
    {
        var directory = string.Concat(TagsDirectory, "/", upstream, "/", repository, "/_tags");
        return Directory.Exists(directory) ? Directory.EnumerateFiles(directory).Select(f => Path.GetFileName(f)) : [];
    }

    /// <summary>Path of a cached listing (tags list page, referrers answer) identified by a key the caller builds.</summary>
    public string ListingPath(string upstream, string repository, string key) =>
        string.Concat(ListingsDirectory, "/", upstream, "/", repository, "/_", key);

    public async Task WriteAtomicallyAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var temp = NewTempPath();
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
            {
                await RandomAccess.WriteAsync(handle, content, 0, cancellationToken).ConfigureAwait(false);
                RandomAccess.FlushToDisk(handle);
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Every content object on disk, for rebuilding the index.</summary>
    public IEnumerable<(Digest Digest, long Size, string? MediaType, DateTime LastWriteUtc)> EnumerateContent()
    {
        if (!Directory.Exists(BlobsDirectory))
        {
            yield break;
        }

        foreach (var algorithmDirectory in Directory.EnumerateDirectories(BlobsDirectory))
        {
            var algorithm = Path.GetFileName(algorithmDirectory);
            foreach (var file in Directory.EnumerateFiles(algorithmDirectory, "*", SearchOption.AllDirectories))
            {
                var name = Path.GetFileName(file);
                if (name.EndsWith(TypeSuffix, StringComparison.Ordinal) || !Digest.TryParse($"{algorithm}:{name}", out var digest))
                {
                    continue;
                }

                var info = new FileInfo(file);
                if (info.Exists)
                {
                    yield return (digest, info.Length, ReadMediaType(digest), info.LastWriteTimeUtc);
                }
            }
        }
    }

    /// <summary>Every tag file on disk, for rebuilding the index.</summary>
    public IEnumerable<(string Upstream, string Repository, string Tag, TagRecord Record)> EnumerateTags()
    {
        if (!Directory.Exists(TagsDirectory))
        {
            yield break;
        }

        foreach (var upstreamDirectory in Directory.EnumerateDirectories(TagsDirectory))
        {
            var upstream = Path.GetFileName(upstreamDirectory);
            foreach (var tagsDirectory in Directory.EnumerateDirectories(upstreamDirectory, "_tags", SearchOption.AllDirectories))
            {
                var repository = Path.GetRelativePath(upstreamDirectory, Path.GetDirectoryName(tagsDirectory)!).Replace('\\', '/');
                foreach (var file in Directory.EnumerateFiles(tagsDirectory))
                {
                    if (ReadTagFile(file) is { } record)
                    {
                        yield return (upstream, repository, Path.GetFileName(file), record);
                    }
                }
            }
        }
    }

    private static TagRecord? ReadTagFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(bytes);
            var root = json.RootElement;
            if (!Digest.TryParse(root.GetProperty("digest").GetString(), out var digest))
            {
                return null;
            }

            return new TagRecord(digest, root.GetProperty("mediaType").GetString() ?? MediaTypes.OciManifest, root.GetProperty("size").GetInt64(), root.GetProperty("fetchedAt").GetDateTimeOffset());
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            // A damaged tag file is treated as absent; the next pull rewrites it.
            return null;
        }
    }
}
