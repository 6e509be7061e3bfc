namespace MirrorProxy.Storage;

/// <summary>
/// Small named documents beside the content: tag records, cached listings, pin sets, the scrub cursor. Keys are
/// relative, slash-separated names (<c>tags/docker.io/library/nginx/_tags/1.27</c>); each write replaces the
/// document atomically and durably.
/// </summary>
internal interface IMetadataStore
{
    /// <summary>The document, or null when there is none (or it is larger than <paramref name="maxBytes"/>).</summary>
    ValueTask<byte[]?> ReadAsync(string key, int maxBytes, CancellationToken cancellationToken);

    ValueTask<StorageStatus> WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    ValueTask<StorageStatus> DeleteAsync(string key, CancellationToken cancellationToken);

    /// <summary>The names of the documents directly under <paramref name="prefix"/> (one level).</summary>
    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Every key under <paramref name="prefix"/>, at any depth.</summary>
    IAsyncEnumerable<string> EnumerateAsync(string prefix, CancellationToken cancellationToken);
}

/// <summary>The keys the mirror's documents live under.</summary>
internal static class MetadataKeys
{
    public const string TagsPrefix = "tags";
    public const string PinsPrefix = "pins";
    public const string StatePrefix = "state";

    /// <summary>Documents about this node alone (where the scrub got to), never shared between replicas.</summary>
    public const string LocalPrefix = "state/local/";

    /// <summary>The directory-like segment that separates a repository name (which has slashes) from its tags.</summary>
    public const string TagsMarker = "_tags";

    public static string Tag(string upstream, string repository, string tag) => string.Concat(TagsPrefix, "/", upstream, "/", repository, "/", TagsMarker, "/", tag);

    public static string Tags(string upstream, string repository) => string.Concat(TagsPrefix, "/", upstream, "/", repository, "/", TagsMarker);

    public static string Listing(string upstream, string repository, string name) => string.Concat("listings/", upstream, "/", repository, "/_", name);

    public static string Pin(string name) => string.Concat(PinsPrefix, "/", name, ".json");

    /// <summary>Splits a key made by <see cref="Tag"/> back into its parts.</summary>
    public static bool TryParseTag(string key, out string upstream, out string repository, out string tag)
    {
        upstream = repository = tag = "";
        var marker = "/" + TagsMarker + "/";
        if (!key.StartsWith(TagsPrefix + "/", StringComparison.Ordinal))
        {
            return false;
        }

        var rest = key.AsSpan(TagsPrefix.Length + 1);
        var slash = rest.IndexOf('/');
        var at = rest.LastIndexOf(marker);
        if (slash <= 0 || at <= slash)
        {
            return false;
        }

        upstream = rest[..slash].ToString();
        repository = rest[(slash + 1)..at].ToString();
        tag = rest[(at + marker.Length)..].ToString();
        return repository.Length > 0 && tag.Length > 0 && !tag.Contains('/');
    }
}
