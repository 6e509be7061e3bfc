using System.Runtime.CompilerServices;
using System.Text.Json;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

internal sealed partial class MirrorCache
{
    private const int MaxTagDocument = 4096;

    /// <summary>Largest listing (tags page, referrers answer) kept.</summary>
    public const int MaxListingSize = 4 * 1024 * 1024;

    /// <summary>
    /// The tag as last seen upstream. The index answers while it is trusted; after a crash, until the rebuild has
    /// walked the files, the tag's file answers first (it is written before any answer uses it, so it is newest), as
    /// it does once the index has dropped a write (it may have missed a tag's move).
    /// </summary>
    public async ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken)
    {
        if (_indexTrusted && _index.WritesDropped == 0 && await _index.GetTagAsync(upstream, repository, tag).ConfigureAwait(false) is { } indexed)
        {
            return indexed;
        }

        var document = await _metadata.ReadAsync(MetadataKeys.Tag(upstream, repository, tag), MaxTagDocument, cancellationToken).ConfigureAwait(false);
        if (document is null || ParseTag(document) is not { } record)
        {
            return null;
        }

        var newer = await _index.GetTagAsync(upstream, repository, tag).ConfigureAwait(false);
        if (newer is not null && newer.Digest == record.Digest && newer.FetchedAt > record.FetchedAt)
        {
            // The index keeps revalidation times the file does not (they are not worth a disk write).
            return newer;
        }

        _index.PutTag(upstream, repository, tag, record);
        return record;
    }

    /// <summary>
    /// Records a tag. When its digest moved (or it is new) the tag's file is written first (durable, atomic); a
    /// revalidation that only confirms the digest updates the index alone. A failing disk is reported and the
    /// index still learns the tag, so it is served until the next restart.
    /// </summary>
    public async ValueTask<StorageStatus> PutTagAsync(string upstream, string repository, string tag, TagRecord record, bool digestChanged, CancellationToken cancellationToken)
    {
        var status = StorageStatus.Ok;
        if (digestChanged)
        {
            status = await _metadata.WriteAsync(MetadataKeys.Tag(upstream, repository, tag), SerializeTag(record), cancellationToken).ConfigureAwait(false);
            if (StorageErrors.IsWriteFault(status))
            {
                _health.WriteFailed(status, $"tag {upstream}/{repository}:{tag}");
            }
            else
            {
                _health.WriteSucceeded();
            }
        }

        _index.PutTag(upstream, repository, tag, record);
        return status;
    }

    public async ValueTask DeleteTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken)
    {
        await _metadata.DeleteAsync(MetadataKeys.Tag(upstream, repository, tag), cancellationToken).ConfigureAwait(false);
        _index.DeleteTag(upstream, repository, tag);
    }

    /// <summary>Names of the tags stored for one repository.</summary>
    public IAsyncEnumerable<string> ListTagsAsync(string upstream, string repository, CancellationToken cancellationToken) =>
        _metadata.ListAsync(MetadataKeys.Tags(upstream, repository), cancellationToken);

    /// <summary>Every tag with its record, from the files (for the rebuild).</summary>
    internal async IAsyncEnumerable<(string Upstream, string Repository, string Tag, TagRecord Record)> EnumerateTagFilesAsync(
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var key in _metadata.EnumerateAsync(MetadataKeys.TagsPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (!MetadataKeys.TryParseTag(key, out var upstream, out var repository, out var tag))
            {
                continue;
            }

            if (await _metadata.ReadAsync(key, MaxTagDocument, cancellationToken).ConfigureAwait(false) is { } document && ParseTag(document) is { } record)
            {
                yield return (upstream, repository, tag, record);
            }
        }
    }

    /// <summary>Stores a listing answer (tags page, referrers index) for use while the upstream is unreachable.</summary>
    public async ValueTask<StorageStatus> PutListingAsync(string upstream, string repository, string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var status = await _metadata.WriteAsync(MetadataKeys.Listing(upstream, repository, name), content, cancellationToken).ConfigureAwait(false);
        if (StorageErrors.IsWriteFault(status))
        {
            _health.WriteFailed(status, $"listing {upstream}/{repository}");
        }

        return status;
    }

    public ValueTask<byte[]?> ReadListingAsync(string upstream, string repository, string name, CancellationToken cancellationToken) =>
        _metadata.ReadAsync(MetadataKeys.Listing(upstream, repository, name), MaxListingSize, cancellationToken);

    internal static byte[] SerializeTag(TagRecord record)
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

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A tag file; null when it is damaged (the next pull rewrites it).</summary>
    internal static TagRecord? ParseTag(ReadOnlySpan<byte> document)
    {
        try
        {
            var reader = new Utf8JsonReader(document);
            using var json = JsonDocument.ParseValue(ref reader);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !Digest.TryParse(root.GetProperty("digest").GetString(), out var digest))
            {
                return null;
            }

            return new TagRecord(
                digest, root.GetProperty("mediaType").GetString() ?? MediaTypes.OciManifest, root.GetProperty("size").GetInt64(), root.GetProperty("fetchedAt").GetDateTimeOffset());
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}
