using System.Buffers.Binary;
using System.Text;
using MirrorProxy.Oci;

namespace MirrorProxy.Storage;

/// <summary>How an object is known to be used.</summary>
internal enum ContentKind : byte
{
    /// <summary>Found in the files by a rebuild: whether it is a manifest is looked up when it matters.</summary>
    Unknown = 0,
    Blob = 1,
    /// <summary>Stored as a manifest, with its media type.</summary>
    Manifest = 2,
    /// <summary>
    /// A plain blob found in the files (after a crash or with a lost index) and not hashed since: its size is the
    /// file's own, so it is hashed once before it is streamed.
    /// </summary>
    FoundBlob = 3,
}

/// <summary>What the index knows of one object.</summary>
/// <param name="Size">Exact size in bytes; a file of another size is damaged.</param>
/// <param name="Kind">Blob, manifest, or not known yet.</param>
/// <param name="MediaType">The manifest media type; null for blobs.</param>
/// <param name="LastAccess">Last time it was served or stored (to the precision the index keeps), for eviction.</param>
/// <param name="Origins">The private upstreams that brought it or showed they hold it; empty when it is public.</param>
/// <param name="Remote">In the shared store of replicas and not (yet) on this node: never indexed, read from there.</param>
internal readonly record struct ContentEntry(long Size, ContentKind Kind, string? MediaType, DateTimeOffset LastAccess, OriginSet Origins = default, bool Remote = false);

/// <summary>A tag as last seen upstream: what it pointed to and when that was confirmed.</summary>
internal sealed record TagRecord(Digest Digest, string MediaType, long Size, DateTimeOffset FetchedAt);

/// <summary>
/// The binary layout of index keys and values. Keys start with a kind byte: content keys are the raw hash
/// (34 bytes for sha256), tag keys the UTF-8 of upstream, repository and tag. Values start with a version byte,
/// so a record written by another version is treated as absent (and the files answer instead).
/// </summary>
internal static class IndexRecords
{
    public const byte ContentKeyKind = 1;
    public const byte TagKeyKind = 2;
    public const byte StateKeyKind = 3;

    private const byte Version = 2;
    private const byte Sha256 = 1;
    private const byte Sha512 = 2;

    /// <summary>Fixed part of a content value: version, kind, origin count, reserved, size (8), last access (8); then the origins (4 each), then the media type.</summary>
    private const int ContentFixed = 20;

    /// <summary>Fixed part of a tag value: version, digest length, media type length (2), fetched at (8), size (8).</summary>
    private const int TagFixed = 20;

    public const int MaxContentKeyLength = 2 + 64;

    public static int WriteContentKey(Digest digest, Span<byte> key)
    {
        key[0] = ContentKeyKind;
        key[1] = digest.IsSha512 ? Sha512 : Sha256;
        var encoded = digest.Encoded;
        Convert.FromHexString(encoded, key[2..], out _, out var written);
        return 2 + written;
    }

    /// <summary>The digest a content key stands for; false for keys of other kinds.</summary>
    public static bool TryReadContentKey(ReadOnlySpan<byte> key, out Digest digest)
    {
        digest = default;
        if (key.Length < 2 || key[0] != ContentKeyKind)
        {
            return false;
        }

        var prefix = key[1] switch
        {
            Sha256 when key.Length == 34 => "sha256:",
            Sha512 when key.Length == 66 => "sha512:",
            _ => null,
        };
        return prefix is not null && Digest.TryParse(prefix + Convert.ToHexStringLower(key[2..]), out digest);
    }

    public static byte[] ContentValue(in ContentEntry entry)
    {
        var mediaType = entry.Kind == ContentKind.Manifest && entry.MediaType is { } type ? Encoding.UTF8.GetBytes(type) : [];
        var origins = entry.Origins.Count;
        var value = new byte[ContentFixed + 4 * origins + mediaType.Length];
        value[0] = Version;
        value[1] = (byte)entry.Kind;
        value[2] = (byte)origins;
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(4), entry.Size);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(12), entry.LastAccess.ToUnixTimeMilliseconds());
        for (var i = 0; i < origins; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(ContentFixed + 4 * i), entry.Origins[i]);
        }

        mediaType.CopyTo(value, ContentFixed + 4 * origins);
        return value;
    }

    public static bool TryReadContentValue(ReadOnlySpan<byte> value, out ContentEntry entry)
    {
        entry = default;
        if (value.Length < ContentFixed || value[0] != Version || value[1] > (byte)ContentKind.FoundBlob || value[2] > OriginSet.Capacity
            || value.Length < ContentFixed + 4 * value[2])
        {
            return false;
        }

        var kind = (ContentKind)value[1];
        var size = BinaryPrimitives.ReadInt64LittleEndian(value[4..]);
        var lastAccess = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(value[12..]));
        var origins = OriginSet.Public;
        Span<uint> ids = stackalloc uint[OriginSet.Capacity];
        for (var i = 0; i < value[2]; i++)
        {
            ids[i] = BinaryPrimitives.ReadUInt32LittleEndian(value[(ContentFixed + 4 * i)..]);
        }

        if (value[2] > 0)
        {
            origins = new OriginSet(value[2], ids[0], ids[1], ids[2], ids[3]);
        }

        var typeStart = ContentFixed + 4 * value[2];
        var mediaType = kind == ContentKind.Manifest && value.Length > typeStart ? MediaTypes.Intern(value[typeStart..]) : null;
        entry = new ContentEntry(size, kind, mediaType, lastAccess, origins);
        return size >= 0;
    }

    /// <summary>Last access of a content value without decoding the rest (for the eviction scan).</summary>
    public static bool TryReadContentAccess(ReadOnlySpan<byte> value, out long size, out long lastAccessMilliseconds)
    {
        size = lastAccessMilliseconds = 0;
        if (value.Length < ContentFixed || value[0] != Version)
        {
            return false;
        }

        size = BinaryPrimitives.ReadInt64LittleEndian(value[4..]);
        lastAccessMilliseconds = BinaryPrimitives.ReadInt64LittleEndian(value[12..]);
        return true;
    }

    public static int TagKeyLength(string upstream, string repository, string tag) =>
        1 + Encoding.UTF8.GetByteCount(upstream) + 1 + Encoding.UTF8.GetByteCount(repository) + 1 + Encoding.UTF8.GetByteCount(tag);

    public static int WriteTagKey(string upstream, string repository, string tag, Span<byte> key)
    {
        key[0] = TagKeyKind;
        var written = 1;
        written += Encoding.UTF8.GetBytes(upstream, key[written..]);
        key[written++] = (byte)'\n';
        written += Encoding.UTF8.GetBytes(repository, key[written..]);
        key[written++] = (byte)':';
        written += Encoding.UTF8.GetBytes(tag, key[written..]);
        return written;
    }

    public static byte[] TagValue(TagRecord record)
    {
        var digest = Encoding.ASCII.GetBytes(record.Digest.Value);
        var mediaType = Encoding.UTF8.GetBytes(record.MediaType);
        var value = new byte[TagFixed + digest.Length + mediaType.Length];
        value[0] = Version;
        value[1] = (byte)digest.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(value.AsSpan(2), (ushort)mediaType.Length);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(4), record.FetchedAt.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(12), record.Size);
        digest.CopyTo(value, TagFixed);
        mediaType.CopyTo(value, TagFixed + digest.Length);
        return value;
    }

    public static bool TryReadTagValue(ReadOnlySpan<byte> value, out TagRecord? record)
    {
        record = null;
        if (value.Length < TagFixed || value[0] != Version)
        {
            return false;
        }

        int digestLength = value[1];
        int typeLength = BinaryPrimitives.ReadUInt16LittleEndian(value[2..]);
        if (value.Length != TagFixed + digestLength + typeLength
            || !Digest.TryParse(Encoding.ASCII.GetString(value.Slice(TagFixed, digestLength)), out var digest))
        {
            return false;
        }

        record = new TagRecord(
            digest,
            MediaTypes.Intern(value.Slice(TagFixed + digestLength, typeLength)),
            BinaryPrimitives.ReadInt64LittleEndian(value[12..]),
            DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(value[4..])));
        return true;
    }

    /// <summary>The key of a named state record (totals, say).</summary>
    public static byte[] StateKey(string name)
    {
        var key = new byte[1 + Encoding.ASCII.GetByteCount(name)];
        key[0] = StateKeyKind;
        Encoding.ASCII.GetBytes(name, key.AsSpan(1));
        return key;
    }
}
