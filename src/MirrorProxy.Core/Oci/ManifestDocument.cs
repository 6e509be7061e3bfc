using System.Text.Json;

namespace MirrorProxy.Oci;

internal sealed record Platform(string Os, string Architecture, string? Variant)
{
    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";

    /// <summary>Buildx attestation manifests carry <c>unknown/unknown</c>; they are never run.</summary>
    public bool IsUnknown => Os == "unknown" && Architecture == "unknown";
}

/// <summary>A content descriptor from a manifest or index.</summary>
internal sealed record Descriptor(string MediaType, Digest Digest, long Size, Platform? Platform);

/// <summary>
/// What a manifest points at: for an index, its manifests; for an image (or artifact) manifest, its config and
/// layers; for a schema 1 manifest, its layers. Only what the mirror needs to walk an image is read.
/// </summary>
internal sealed record ManifestDocument(bool IsIndex, IReadOnlyList<Descriptor> Manifests, Descriptor? Config, IReadOnlyList<Descriptor> Layers)
{
    public IEnumerable<Descriptor> Blobs => Config is null ? Layers : Layers.Prepend(Config);

    /// <summary>
    /// Whether <paramref name="content"/> is a manifest of the type it claims: a JSON object whose shape is that of
    /// an index (<c>manifests</c>), an image manifest (<c>config</c> and <c>layers</c>), a schema 1 manifest
    /// (<c>fsLayers</c>) or an artifact manifest. Anything else (an HTML page, a blob, an error document) is not
    /// stored or served as a manifest.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<byte> content, string mediaType)
    {
        if (!IsManifestMediaType(mediaType))
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(content);
            using var json = JsonDocument.ParseValue(ref reader);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            return mediaType switch
            {
                MediaTypes.OciIndex or MediaTypes.DockerManifestList => IsArray(root, "manifests"),
                MediaTypes.OciManifest or MediaTypes.DockerManifest =>
                    root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object && IsArray(root, "layers"),
                MediaTypes.DockerSchema1 or MediaTypes.DockerSchema1Signed => IsArray(root, "fsLayers"),
                MediaTypes.OciArtifactManifest => !root.TryGetProperty("blobs", out var blobs) || blobs.ValueKind == JsonValueKind.Array,
                _ => IsArray(root, "manifests") || IsArray(root, "layers") || IsArray(root, "blobs"),
            };
        }
        catch (JsonException)
        {
            return false;
        }

        static bool IsArray(JsonElement root, string name) => root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array;
    }

    /// <summary>A media type a manifest can have: the registry types, or a vendor JSON type.</summary>
    public static bool IsManifestMediaType(string mediaType) =>
        mediaType is MediaTypes.OciIndex or MediaTypes.OciManifest or MediaTypes.DockerManifestList or MediaTypes.DockerManifest
            or MediaTypes.DockerSchema1 or MediaTypes.DockerSchema1Signed or MediaTypes.OciArtifactManifest
        || (mediaType.StartsWith("application/vnd.", StringComparison.Ordinal) && mediaType.EndsWith("+json", StringComparison.Ordinal));

    public static bool TryParse(ReadOnlySpan<byte> content, string mediaType, out ManifestDocument? document)
    {
        document = null;
        try
        {
            var reader = new Utf8JsonReader(content);
            using var json = JsonDocument.ParseValue(ref reader);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            if (MediaTypes.IsIndex(mediaType) || (root.TryGetProperty("manifests", out var m) && m.ValueKind == JsonValueKind.Array))
            {
                document = new ManifestDocument(true, ReadDescriptors(root, "manifests"), null, []);
                return true;
            }

            if (root.TryGetProperty("fsLayers", out var fsLayers) && fsLayers.ValueKind == JsonValueKind.Array)
            {
                var layers = new List<Descriptor>();
                foreach (var layer in fsLayers.EnumerateArray())
                {
                    if (layer.TryGetProperty("blobSum", out var sum) && Digest.TryParse(sum.GetString(), out var digest) && !layers.Exists(l => l.Digest == digest))
                    {
                        layers.Add(new Descriptor(MediaTypes.OctetStream, digest, -1, null));
                    }
                }

                document = new ManifestDocument(false, [], null, layers);
                return true;
            }

            var config = root.TryGetProperty("config", out var c) ? ReadDescriptor(c) : null;
            var blobs = ReadDescriptors(root, "layers");
            blobs.AddRange(ReadDescriptors(root, "blobs"));
            document = new ManifestDocument(false, [], config, blobs);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static List<Descriptor> ReadDescriptors(JsonElement root, string property)
    {
        var result = new List<Descriptor>();
        if (root.TryGetProperty(property, out var array) && array.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in array.EnumerateArray())
            {
                if (ReadDescriptor(item) is { } descriptor)
                {
                    result.Add(descriptor);
                }
            }
        }

        return result;
    }

    private static Descriptor? ReadDescriptor(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty("digest", out var d) || !Digest.TryParse(d.GetString(), out var digest))
        {
            return null;
        }

        var mediaType = element.TryGetProperty("mediaType", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : MediaTypes.OctetStream;
        var size = element.TryGetProperty("size", out var s) && s.TryGetInt64(out var n) ? n : -1;
        Platform? platform = null;
        if (element.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
        {
            platform = new Platform(
                p.TryGetProperty("os", out var os) ? os.GetString() ?? "" : "",
                p.TryGetProperty("architecture", out var arch) ? arch.GetString() ?? "" : "",
                p.TryGetProperty("variant", out var variant) ? variant.GetString() : null);
        }

        return new Descriptor(mediaType, digest, size, platform);
    }
}

/// <summary>Which platforms of a multi-platform image matter: a list such as <c>linux/amd64,linux/arm64</c>, or <c>all</c>.</summary>
internal sealed record PlatformSelection(IReadOnlyList<Platform> Platforms, bool All)
{
    public static PlatformSelection Everything { get; } = new([], true);

    /// <summary>The platform this process runs on, e.g. <c>linux/arm64</c>.</summary>
    public static PlatformSelection Current => new([new Platform("linux", System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        System.Runtime.InteropServices.Architecture.X86 => "386",
        var other => other.ToString().ToLowerInvariant(),
    }, null)], false);

    public static bool TryParse(string? text, out PlatformSelection? selection, out string error)
    {
        selection = null;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            selection = Current;
            return true;
        }

        if (text.Trim().Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            selection = Everything;
            return true;
        }

        var platforms = new List<Platform>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split('/');
            if (parts.Length is < 2 or > 3 || parts.Any(string.IsNullOrEmpty))
            {
                error = $"'{item}' is not os/arch or os/arch/variant (for example linux/arm64)";
                return false;
            }

            platforms.Add(new Platform(parts[0], parts[1], parts.Length == 3 ? parts[2] : null));
        }

        selection = new PlatformSelection(platforms, false);
        return true;
    }

    public override string ToString() => All ? "all" : string.Join(',', Platforms);

    /// <summary>The manifests of an index this selection needs; also reports requested platforms the index lacks.</summary>
    public IReadOnlyList<Descriptor> Select(IReadOnlyList<Descriptor> manifests, out IReadOnlyList<Platform> absent)
    {
        if (All)
        {
            absent = [];
            return manifests.Where(m => m.Platform is not { IsUnknown: true }).ToList();
        }

        var chosen = new List<Descriptor>();
        var missing = new List<Platform>();
        foreach (var wanted in Platforms)
        {
            var match = manifests.FirstOrDefault(m => m.Platform is { } p && Matches(wanted, p));
            if (match is null)
            {
                missing.Add(wanted);
            }
            else if (!chosen.Contains(match))
            {
                chosen.Add(match);
            }
        }

        absent = missing;
        return chosen;
    }

    private static bool Matches(Platform wanted, Platform offered) =>
        wanted.Os == offered.Os && wanted.Architecture == offered.Architecture
        && (wanted.Variant is null || wanted.Variant == offered.Variant || (wanted.Architecture == "arm64" && wanted.Variant == "v8" && offered.Variant is null));
}
