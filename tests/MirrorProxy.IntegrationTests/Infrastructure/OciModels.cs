using System.Security.Cryptography;

namespace MirrorProxy.IntegrationTests.Infrastructure;

internal static class OciMediaTypes
{
    public const string ImageIndex = "application/vnd.oci.image.index.v1+json";
    public const string ImageManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string ImageConfig = "application/vnd.oci.image.config.v1+json";
    public const string ImageLayerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

    public const string DockerManifestV2 = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerImageConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayerTarGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    public const string HelmConfig = "application/vnd.cncf.helm.config.v1+json";
    public const string HelmChartContent = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

    /// <summary>An Accept header value that covers every manifest type produced by <see cref="OciImageFactory"/>.</summary>
    public static readonly IReadOnlyList<string> AllManifestTypes = [ImageIndex, ImageManifest, DockerManifestList, DockerManifestV2];

    public static string Digest(ReadOnlySpan<byte> content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));
}

internal sealed record OciPlatform(string Os, string Architecture, string? Variant = null)
{
    public static OciPlatform LinuxAmd64 { get; } = new("linux", "amd64");

    public static OciPlatform LinuxArm64 { get; } = new("linux", "arm64", "v8");

    /// <summary><c>os/arch[/variant]</c>, the form <c>ctr --platform</c> and skopeo accept.</summary>
    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}

/// <summary>A blob (config or layer) with its exact bytes.</summary>
internal sealed class OciBlob
{
    public OciBlob(string mediaType, byte[] content, string? uncompressedDigest = null)
    {
        MediaType = mediaType;
        Content = content;
        Digest = OciMediaTypes.Digest(content);
        UncompressedDigest = uncompressedDigest;
    }

    /// <summary><c>sha256:&lt;hex&gt;</c> of <see cref="Content"/>.</summary>
    public string Digest { get; }

    public long Size => Content.LongLength;

    public string MediaType { get; }

    public byte[] Content { get; }

    /// <summary>For layers: sha256 of the uncompressed tar (the config's <c>rootfs.diff_ids</c> entry). Null for configs.</summary>
    public string? UncompressedDigest { get; }

    public string Hex => Digest["sha256:".Length..];

    public override string ToString() => $"{MediaType} {Digest} ({Size} bytes)";
}

/// <summary>An image manifest (or, for the index, see <see cref="TestImage"/>) with its exact bytes.</summary>
internal sealed class TestManifest
{
    public TestManifest(string mediaType, byte[] content, OciPlatform? platform, OciBlob config, IReadOnlyList<OciBlob> layers)
    {
        MediaType = mediaType;
        Content = content;
        Digest = OciMediaTypes.Digest(content);
        Platform = platform;
        Config = config;
        Layers = layers;
    }

    public string Digest { get; }

    public string MediaType { get; }

    public byte[] Content { get; }

    public long Size => Content.LongLength;

    public OciPlatform? Platform { get; }

    public OciBlob Config { get; }

    public IReadOnlyList<OciBlob> Layers { get; }

    /// <summary>Config first, then layers.</summary>
    public IEnumerable<OciBlob> Blobs => [Config, .. Layers];

    public override string ToString() => $"{MediaType} {Digest} {Platform}";
}

/// <summary>Everything that was (or will be) pushed for one tag, byte for byte.</summary>
internal sealed class TestImage
{
    public TestImage(string repository, string tag, string mediaType, byte[] manifestBytes, IReadOnlyList<TestManifest> childManifests, TestManifest? singleManifest)
    {
        Repository = repository;
        Tag = tag;
        MediaType = mediaType;
        ManifestBytes = manifestBytes;
        Digest = OciMediaTypes.Digest(manifestBytes);
        ChildManifests = childManifests;
        Manifests = singleManifest is null ? childManifests : [singleManifest];
        Blobs = Manifests.SelectMany(m => m.Blobs).DistinctBy(b => b.Digest).ToArray();
    }

    public string Repository { get; }

    public string Tag { get; }

    /// <summary>Digest of the top-level manifest (the index for multi-arch images).</summary>
    public string Digest { get; }

    /// <summary>Media type of the top-level manifest.</summary>
    public string MediaType { get; }

    /// <summary>Exact bytes of the top-level manifest as pushed.</summary>
    public byte[] ManifestBytes { get; }

    public long ManifestSize => ManifestBytes.LongLength;

    /// <summary>The per-platform manifests referenced by the index; empty when the top level is itself an image manifest.</summary>
    public IReadOnlyList<TestManifest> ChildManifests { get; }

    /// <summary>The image manifests: the children of an index, or the single top-level manifest.</summary>
    public IReadOnlyList<TestManifest> Manifests { get; }

    /// <summary>Every distinct blob (configs and layers) across all manifests.</summary>
    public IReadOnlyList<OciBlob> Blobs { get; }

    public IEnumerable<OciBlob> Layers => Blobs.Where(b => b.UncompressedDigest is not null);

    public bool IsIndex => ChildManifests.Count > 0;

    public OciBlob GetBlob(string digest)
        => Blobs.FirstOrDefault(b => b.Digest == digest) ?? throw new KeyNotFoundException($"{Repository}:{Tag} has no blob {digest}.");

    public TestManifest GetManifest(OciPlatform platform)
        => Manifests.FirstOrDefault(m => m.Platform == platform) ?? throw new KeyNotFoundException($"{Repository}:{Tag} has no manifest for {platform}.");

    /// <summary>Exact bytes for a manifest digest (top-level or child), or null.</summary>
    public byte[]? FindManifestBytes(string digest)
        => digest == Digest ? ManifestBytes : Manifests.FirstOrDefault(m => m.Digest == digest)?.Content;

    /// <summary><c>host/repo:tag</c> for a registry host (e.g. <see cref="TestRegistry.HostPort"/>).</summary>
    public string Reference(string host) => $"{host}/{Repository}:{Tag}";

    public string DigestReference(string host) => $"{host}/{Repository}@{Digest}";

    public override string ToString() => $"{Repository}:{Tag} ({MediaType} {Digest})";
}
