namespace MirrorProxy.Oci;

internal static class MediaTypes
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
    public const string DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    public const string OciArtifactManifest = "application/vnd.oci.artifact.manifest.v1+json";
    public const string OctetStream = "application/octet-stream";
    public const string Json = "application/json";

    /// <summary>
    /// Sent upstream on every manifest request: without an explicit list, legacy registries may answer schema1.
    /// </summary>
    public const string ManifestAccept =
        OciIndex + ", " + OciManifest + ", " + DockerManifestList + ", " + DockerManifest + ", " +
        OciArtifactManifest + ", " + DockerSchema1Signed + ";q=0.5, " + DockerSchema1 + ";q=0.5, */*;q=0.1";

    public static bool IsIndex(string? mediaType) => mediaType is OciIndex or DockerManifestList;

    private static readonly string[] Known =
        [OciIndex, OciManifest, DockerManifestList, DockerManifest, DockerSchema1, DockerSchema1Signed, OciArtifactManifest, OctetStream, Json];

    /// <summary>A media type from UTF-8 bytes, as the shared constant when it is a known one (no allocation on hot reads).</summary>
    public static string Intern(ReadOnlySpan<byte> utf8)
    {
        foreach (var known in Known)
        {
            if (utf8.Length == known.Length && Matches(utf8, known))
            {
                return known;
            }
        }

        return System.Text.Encoding.UTF8.GetString(utf8);

        static bool Matches(ReadOnlySpan<byte> utf8, string text)
        {
            for (var i = 0; i < utf8.Length; i++)
            {
                if (utf8[i] != text[i])
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>Removes parameters (<c>; charset=…</c>) and surrounding whitespace.</summary>
    public static string? StripParameters(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return null;
        }

        var semicolon = contentType.IndexOf(';');
        var value = (semicolon >= 0 ? contentType.AsSpan(0, semicolon) : contentType.AsSpan()).Trim();
        return value.Length == contentType.Length ? contentType : value.ToString();
    }

    /// <summary>Whether a client's Accept header admits <paramref name="mediaType"/>. An absent header admits all.</summary>
    public static bool IsAccepted(string? mediaType, IEnumerable<string?> acceptHeaders)
    {
        var sawAny = false;
        foreach (var header in acceptHeaders)
        {
            if (string.IsNullOrEmpty(header))
            {
                continue;
            }

            foreach (var range in header.AsSpan().Split(','))
            {
                var item = header.AsSpan()[range];
                var semicolon = item.IndexOf(';');
                var parameters = semicolon >= 0 ? item[(semicolon + 1)..] : default;
                if (semicolon >= 0)
                {
                    item = item[..semicolon];
                }

                item = item.Trim();
                if (item.IsEmpty)
                {
                    continue;
                }

                sawAny = true;
                if (IsZeroQuality(parameters))
                {
                    continue; // q=0: explicitly not acceptable (RFC 9110 §12.4.2)
                }

                if (item is "*/*" || (mediaType is not null && item.Equals(mediaType, StringComparison.OrdinalIgnoreCase)))
                {
                    return true;
                }

                if (item.EndsWith("/*") && mediaType is not null && mediaType.AsSpan().StartsWith(item[..^1], StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return !sawAny;
    }

    private static bool IsZeroQuality(ReadOnlySpan<char> parameters)
    {
        foreach (var range in parameters.Split(';'))
        {
            var parameter = parameters[range].Trim();
            if (parameter.StartsWith("q=", StringComparison.OrdinalIgnoreCase)
                && double.TryParse(parameter[2..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var q))
            {
                return q <= 0;
            }
        }

        return false;
    }
}
