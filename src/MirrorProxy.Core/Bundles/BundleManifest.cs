using System.Text.Json;
using System.Text.Json.Serialization;
using MirrorProxy.Helm;
using MirrorProxy.Oci;

namespace MirrorProxy.Bundles;

/// <summary>
/// <c>mirrorproxy-bundle.json</c>: what a bundle holds, signed as a whole. Every other file of the bundle is listed
/// with its size and sha256, so the signature over this one file covers them all.
/// </summary>
/// <param name="FormatVersion">Layout version; an importer refuses versions it does not know.</param>
/// <param name="Kind"><c>full</c> (standalone: an OCI layout any tool reads) or <c>delta</c> (blobs the base already has are left out).</param>
/// <param name="MirrorId">Identity of the mirror the bundle was cut from.</param>
/// <param name="Created">When the bundle was cut; imported tags carry it as the time they were last seen.</param>
/// <param name="Sequence">Per source mirror, increasing: an island refuses a bundle older than one it has imported.</param>
/// <param name="Base">For a delta, the inventory it was cut against.</param>
/// <param name="Images">The images, one per <c>index.json</c> entry.</param>
/// <param name="Files">Every file of the bundle but this one and its signature.</param>
/// <param name="HelmRepositories">The classic Helm repositories the charts come from, each with the index it carries.</param>
/// <param name="Charts">Helm chart versions, each an archive (and its provenance file) among the blobs.</param>
/// <param name="Selection">The selection rules and their sources, when rules chose what the bundle holds.</param>
internal sealed record BundleManifest(
    int FormatVersion,
    string Kind,
    string MirrorId,
    DateTimeOffset Created,
    long Sequence,
    BundleBase? Base,
    IReadOnlyList<BundleImage> Images,
    IReadOnlyList<BundleFile> Files,
    IReadOnlyList<BundleHelmRepository>? HelmRepositories = null,
    IReadOnlyList<BundleChart>? Charts = null,
    Selection.SelectionRecord? Selection = null)
{
    /// <summary>Version 1: images only. Version 2 adds Helm charts; a bundle without charts is still written as version 1.</summary>
    public const int ImagesOnlyFormatVersion = 1;

    public const int CurrentFormatVersion = 2;

    public const string FullKind = "full";

    public const string DeltaKind = "delta";

    public bool IsDelta => Kind == DeltaKind;
}

/// <summary>The island inventory a delta was cut against.</summary>
/// <param name="MirrorId">The island mirror's identity: only that mirror may import the delta.</param>
/// <param name="Created">When the inventory was taken.</param>
/// <param name="Objects">How many content objects it listed.</param>
/// <param name="Sha256">Hash of the inventory file, to tell which one it was.</param>
/// <param name="Omitted">Blobs left out because the inventory listed them.</param>
internal sealed record BundleBase(string MirrorId, DateTimeOffset Created, long Objects, string Sha256, long Omitted);

/// <summary>One image: its full reference, its top manifest and the platforms carried (empty for a single-platform manifest).</summary>
internal sealed record BundleImage(string Reference, string Digest, string MediaType, long Size, IReadOnlyList<string> Platforms);

/// <summary>
/// A classic Helm repository as the exporting mirror served it: its name on the mirrors, its upstream URL, and its
/// index (chart URLs already rewritten to <c>charts/CHART/VERSION/FILE</c>, as every mirror serves them) among the blobs.
/// </summary>
internal sealed record BundleHelmRepository(string Name, string Url, string IndexDigest, long IndexSize);

/// <summary>
/// One chart version: its archive by the digest the repository's index gives, the upstream URL it was listed at,
/// and its provenance file when the exporting mirror held one.
/// </summary>
internal sealed record BundleChart(string Repository, string Chart, string Version, string Digest, long Size, string Url, string? ProvenanceDigest, long? ProvenanceSize)
{
    /// <summary>The chart reference it was exported as, with the version resolved: <c>helm:REPOSITORY/CHART@VERSION</c>.</summary>
    public string Reference => $"{Selection.SelectionTarget.ChartPrefix}{Repository}/{Chart}@{Version}";
}

/// <summary>One file of the bundle, by its path inside the bundle.</summary>
internal sealed record BundleFile(string Path, long Size, string Sha256);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BundleManifest))]
[JsonSerializable(typeof(string))]
internal sealed partial class BundleJsonContext : JsonSerializerContext;

/// <summary>Names and rules of the bundle layout.</summary>
internal static class BundleLayout
{
    public const string ManifestFile = "mirrorproxy-bundle.json";
    public const string SignatureFile = "mirrorproxy-bundle.json.sig";
    public const string OciLayoutFile = "oci-layout";
    public const string IndexFile = "index.json";
    public const string BlobPrefix = "blobs/sha256/";

    /// <summary>containerd's image name annotation, read before <see cref="RefNameAnnotation"/>.</summary>
    public const string ContainerdNameAnnotation = "io.containerd.image.name";
    public const string RefNameAnnotation = "org.opencontainers.image.ref.name";

    /// <summary>The signed manifest is read into memory: a bound on what a bundle may make the reader hold.</summary>
    public const int MaxManifestBytes = 32 * 1024 * 1024;

    public const int MaxSignatureBytes = 4096;

    /// <summary><c>index.json</c> and <c>oci-layout</c> are read into memory too.</summary>
    public const int MaxSmallFileBytes = 16 * 1024 * 1024;

    public static readonly byte[] OciLayoutContent = """{"imageLayoutVersion":"1.0.0"}"""u8.ToArray();

    public static string BlobPath(Digest digest) => BlobPrefix + digest.Encoded.ToString();

    /// <summary>The digest a <c>blobs/sha256/&lt;hex&gt;</c> path names, if it is one.</summary>
    public static bool TryParseBlobPath(string path, out Digest digest)
    {
        digest = default;
        return path.StartsWith(BlobPrefix, StringComparison.Ordinal) && Digest.TryParse("sha256:" + path[BlobPrefix.Length..], out digest);
    }

    /// <summary>
    /// A path this layout may hold: <c>oci-layout</c>, <c>index.json</c> or <c>blobs/sha256/&lt;64 hex&gt;</c>. Anything
    /// else (<c>..</c>, absolute paths, other names) is refused, so no file can land outside the bundle's own names.
    /// </summary>
    public static bool IsAllowedPath(string path) =>
        path is OciLayoutFile or IndexFile || TryParseBlobPath(path, out _);

    /// <summary>A tar entry name as it stands in the archive, without a leading <c>./</c>.</summary>
    public static string Normalize(string entryName) => entryName.StartsWith("./", StringComparison.Ordinal) ? entryName[2..] : entryName;

    public static bool IsTraversal(string path) =>
        path.StartsWith('/') || path.Contains('\\') || path.Split('/').Any(segment => segment == "..");

    public static bool IsLowerHexSha256(string? text) =>
        text is { Length: 64 } && text.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>Checks the parts of a manifest that the reader relies on; null when it is sound, else why not.</summary>
    public static string? Validate(BundleManifest manifest)
    {
        if (manifest.FormatVersion is not (BundleManifest.ImagesOnlyFormatVersion or BundleManifest.CurrentFormatVersion))
        {
            return $"format version {manifest.FormatVersion} is not supported (this mirror reads versions {BundleManifest.ImagesOnlyFormatVersion} and {BundleManifest.CurrentFormatVersion})";
        }

        if (manifest.FormatVersion == BundleManifest.ImagesOnlyFormatVersion && (manifest.Charts is { Count: > 0 } || manifest.HelmRepositories is { Count: > 0 }))
        {
            return $"a version {BundleManifest.ImagesOnlyFormatVersion} bundle carries images only, but this one lists charts";
        }

        if (manifest.Kind is not (BundleManifest.FullKind or BundleManifest.DeltaKind))
        {
            return $"kind '{manifest.Kind}' is neither full nor delta";
        }

        if (manifest.IsDelta != manifest.Base is not null)
        {
            return "a delta names the inventory it was cut against, and only a delta does";
        }

        if (string.IsNullOrEmpty(manifest.MirrorId) || manifest.Images is null || manifest.Files is null)
        {
            return "the manifest lacks its mirror id, images or files";
        }

        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in manifest.Files)
        {
            if (file?.Path is null || !IsAllowedPath(file.Path))
            {
                return $"the manifest lists a file the layout does not allow: '{file?.Path}'";
            }

            if (!paths.Add(file.Path))
            {
                return $"the manifest lists {file.Path} twice";
            }

            if (file.Size < 0 || !IsLowerHexSha256(file.Sha256))
            {
                return $"the manifest gives {file.Path} no valid size and sha256";
            }

            if (TryParseBlobPath(file.Path, out var digest) && !digest.Encoded.SequenceEqual(file.Sha256))
            {
                return $"{file.Path} is listed with sha256 {file.Sha256}, not its own name";
            }
        }

        if (!paths.Contains(OciLayoutFile) || !paths.Contains(IndexFile))
        {
            return "the manifest does not list oci-layout and index.json";
        }

        foreach (var image in manifest.Images)
        {
            if (image?.Reference is null)
            {
                return "the manifest lists an image without a reference";
            }

            if (!ImageReference.TryParse(image.Reference, out _, out var error))
            {
                return $"image '{image.Reference}' is not a valid reference: {error}";
            }

            if (!Digest.TryParse(image.Digest, out var top) || !paths.Contains(BlobPath(top)))
            {
                return $"image {image.Reference}: its manifest {image.Digest} is not in the bundle";
            }
        }

        return ValidateCharts(manifest, paths);
    }

    /// <summary>Each chart names a listed repository and a sha256 archive; each repository carries its index in the bundle.</summary>
    private static string? ValidateCharts(BundleManifest manifest, HashSet<string> paths)
    {
        var repositories = new Dictionary<string, BundleHelmRepository>(StringComparer.Ordinal);
        foreach (var repository in manifest.HelmRepositories ?? [])
        {
            if (repository?.Name is null || !HelmNames.IsValidRepositoryName(repository.Name) || !Uri.TryCreate(repository.Url, UriKind.Absolute, out _))
            {
                return $"the manifest lists a Helm repository without a valid name and URL: '{repository?.Name}'";
            }

            if (!repositories.TryAdd(repository.Name, repository))
            {
                return $"the manifest lists Helm repository {repository.Name} twice";
            }

            if (!Digest.TryParse(repository.IndexDigest, out var index) || index.IsSha512 || !paths.Contains(BlobPath(index)))
            {
                return $"Helm repository {repository.Name}: its index {repository.IndexDigest} is not in the bundle";
            }
        }

        var versions = new HashSet<(string, string, string)>();
        foreach (var chart in manifest.Charts ?? [])
        {
            if (chart?.Repository is null || chart.Chart is null || chart.Version is null || !HelmNames.IsValidChartName(chart.Chart) || !HelmNames.IsValidVersion(chart.Version))
            {
                return $"the manifest lists a chart without a valid name and version: '{chart?.Chart} {chart?.Version}'";
            }

            if (!repositories.ContainsKey(chart.Repository))
            {
                return $"chart {chart.Reference}: Helm repository {chart.Repository} is not listed";
            }

            if (!versions.Add((chart.Repository, chart.Chart, chart.Version)))
            {
                return $"the manifest lists chart {chart.Reference} twice";
            }

            if (!Digest.TryParse(chart.Digest, out var archive) || archive.IsSha512 || chart.Size < 0 || !Uri.TryCreate(chart.Url, UriKind.Absolute, out _))
            {
                return $"chart {chart.Reference}: no valid sha256 digest, size and upstream URL";
            }

            if (chart.ProvenanceDigest is not null && (!Digest.TryParse(chart.ProvenanceDigest, out var provenance) || provenance.IsSha512 || chart.ProvenanceSize is not >= 0))
            {
                return $"chart {chart.Reference}: its provenance file has no valid sha256 digest and size";
            }
        }

        return null;
    }
}
