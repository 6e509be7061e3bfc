namespace MirrorProxy.Protocol;

internal enum RegistryRequestKind
{
    /// <summary><c>/v2/</c>: API version check.</summary>
    Base,
    Manifest,
    Blob,
    TagsList,
    Referrers,
    /// <summary>Anything under <c>/blobs/uploads/</c>: push, never supported.</summary>
    Upload,
    /// <summary><c>/v2/_catalog</c>.</summary>
    Catalog,
    /// <summary>A path under <c>/v2/</c> that names no endpoint.</summary>
    Unknown,
}

/// <summary>
/// A request path under <c>/v2/</c>, split into repository name and reference. Names contain slashes, so the
/// path is parsed from the right: the last two segments decide the endpoint.
/// </summary>
internal readonly record struct RegistryPath(RegistryRequestKind Kind, string Name, string Reference)
{
    /// <summary>Parses the part of the path after <c>/v2</c> (for <c>/v2/library/nginx/manifests/1.27</c>, <c>/library/nginx/manifests/1.27</c>).</summary>
    public static RegistryPath Parse(ReadOnlySpan<char> path)
    {
        if (path.IsEmpty || path is "/")
        {
            return new(RegistryRequestKind.Base, string.Empty, string.Empty);
        }

        if (path[0] != '/')
        {
            return Unknown;
        }

        path = path[1..];
        if (path is "_catalog" or "_catalog/")
        {
            return new(RegistryRequestKind.Catalog, string.Empty, string.Empty);
        }

        var last = path.LastIndexOf('/');
        if (last <= 0)
        {
            return Unknown;
        }

        var reference = path[(last + 1)..];
        var rest = path[..last];
        var previous = rest.LastIndexOf('/');
        if (previous <= 0)
        {
            return Unknown;
        }

        var kindSegment = rest[(previous + 1)..];
        var name = rest[..previous];

        // /<name>/blobs/uploads/ and /<name>/blobs/uploads/<session>
        if (kindSegment is "uploads" && name.EndsWith("/blobs"))
        {
            return new(RegistryRequestKind.Upload, name[..^"/blobs".Length].ToString(), reference.ToString());
        }

        if (kindSegment is "blobs" && reference is "uploads")
        {
            return new(RegistryRequestKind.Upload, name.ToString(), string.Empty);
        }

        var kind = kindSegment switch
        {
            "manifests" => RegistryRequestKind.Manifest,
            "blobs" => RegistryRequestKind.Blob,
            "referrers" => RegistryRequestKind.Referrers,
            "tags" when reference is "list" => RegistryRequestKind.TagsList,
            _ => RegistryRequestKind.Unknown,
        };

        if (kind == RegistryRequestKind.Unknown || reference.IsEmpty)
        {
            return Unknown;
        }

        return new(kind, name.ToString(), kind == RegistryRequestKind.TagsList ? string.Empty : reference.ToString());
    }

    private static RegistryPath Unknown => new(RegistryRequestKind.Unknown, string.Empty, string.Empty);
}
