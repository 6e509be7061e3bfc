using MirrorProxy.Bundles;

namespace MirrorProxy.Tests.Bundles;

public sealed class BundleLayoutTests
{
    private const string Hex = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    private static BundleManifest Manifest(params BundleFile[] extra) => new(
        BundleManifest.CurrentFormatVersion, BundleManifest.FullKind, "0123456789abcdef0123456789abcdef", DateTimeOffset.UnixEpoch, 1, null,
        [new BundleImage("docker.io/library/alpine:3.20", "sha256:" + Hex, "application/vnd.oci.image.index.v1+json", 10, ["linux/amd64"])],
        [new BundleFile("oci-layout", 30, Hex), new BundleFile("index.json", 100, Hex), new BundleFile("blobs/sha256/" + Hex, 10, Hex), .. extra]);

    [Theory]
    [InlineData("oci-layout", true)]
    [InlineData("index.json", true)]
    [InlineData("blobs/sha256/" + Hex, true)]
    [InlineData("blobs/sha256/" + Hex + "/x", false)]
    [InlineData("blobs/sha512/" + Hex, false)]
    [InlineData("../oci-layout", false)]
    [InlineData("/etc/passwd", false)]
    [InlineData("blobs/sha256/../../x", false)]
    [InlineData("manifest.json", false)]
    public void IsAllowedPath_OnlyTheLayoutsOwnNames(string path, bool allowed) => Assert.Equal(allowed, BundleLayout.IsAllowedPath(path));

    [Fact]
    public void Validate_AcceptsASoundManifest_AndNamesWhatIsWrongOtherwise()
    {
        Assert.Null(BundleLayout.Validate(Manifest()));
        Assert.Contains("does not allow", BundleLayout.Validate(Manifest(new BundleFile("../escape", 1, Hex))), StringComparison.Ordinal);
        Assert.Contains("twice", BundleLayout.Validate(Manifest(new BundleFile("index.json", 1, Hex))), StringComparison.Ordinal);
        var otherHex = new string('b', 64);
        Assert.Contains("not its own name", BundleLayout.Validate(Manifest(new BundleFile("blobs/sha256/" + otherHex, 1, Hex))), StringComparison.Ordinal);
        Assert.Contains("format version", BundleLayout.Validate(Manifest() with { FormatVersion = 3 }), StringComparison.Ordinal);
        Assert.Null(BundleLayout.Validate(Manifest() with { FormatVersion = BundleManifest.ImagesOnlyFormatVersion }));
        Assert.Contains("delta", BundleLayout.Validate(Manifest() with { Kind = BundleManifest.DeltaKind }), StringComparison.Ordinal);
        Assert.Contains("not in the bundle", BundleLayout.Validate(Manifest() with { Images = [new BundleImage("alpine", "sha256:" + otherHex, "x", 1, [])] }), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Charts_NameAListedRepositoryWhoseIndexIsCarried_WithADigestAndAnUpstreamUrl()
    {
        var repository = new BundleHelmRepository("charts", "https://charts.example.com/stable", "sha256:" + Hex, 10);
        var chart = new BundleChart("charts", "app", "1.2.3", "sha256:" + Hex, 10, "https://charts.example.com/stable/app-1.2.3.tgz", null, null);
        var sound = Manifest() with { HelmRepositories = [repository], Charts = [chart] };
        Assert.Null(BundleLayout.Validate(sound));
        Assert.Equal("helm:charts/app@1.2.3", chart.Reference);

        Assert.Contains("carries images only", BundleLayout.Validate(sound with { FormatVersion = BundleManifest.ImagesOnlyFormatVersion }), StringComparison.Ordinal);
        Assert.Contains("Helm repository other is not listed", BundleLayout.Validate(sound with { Charts = [chart with { Repository = "other" }] }), StringComparison.Ordinal);
        Assert.Contains("its index", BundleLayout.Validate(sound with { HelmRepositories = [repository with { IndexDigest = "sha256:" + new string('c', 64) }] }), StringComparison.Ordinal);
        Assert.Contains("twice", BundleLayout.Validate(sound with { Charts = [chart, chart] }), StringComparison.Ordinal);
        Assert.Contains("twice", BundleLayout.Validate(sound with { HelmRepositories = [repository, repository] }), StringComparison.Ordinal);
        Assert.Contains("valid name", BundleLayout.Validate(sound with { Charts = [chart with { Chart = "../app" }] }), StringComparison.Ordinal);
        Assert.Contains("valid name", BundleLayout.Validate(sound with { HelmRepositories = [repository with { Name = "a/b" }] }), StringComparison.Ordinal);
        Assert.Contains("upstream URL", BundleLayout.Validate(sound with { Charts = [chart with { Url = "app-1.2.3.tgz" }] }), StringComparison.Ordinal);
        Assert.Contains("upstream URL", BundleLayout.Validate(sound with { Charts = [chart with { Digest = "md5:abc" }] }), StringComparison.Ordinal);
        Assert.Contains("provenance", BundleLayout.Validate(sound with { Charts = [chart with { ProvenanceDigest = "sha256:" + Hex }] }), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SplitFileStream_CutsPartsSmallerThanTheSplitSize_ThatJoinBackExactly()
    {
        var directory = Directory.CreateTempSubdirectory("split-");
        try
        {
            var data = new byte[10_000];
            new Random(3).NextBytes(data);
            var stem = Path.Combine(directory.FullName, "b.tar");
            await using (var split = new SplitFileStream(stem, 4096))
            {
                await split.WriteAsync(data.AsMemory(0, 3000));
                await split.WriteAsync(data.AsMemory(3000));
            }

            var parts = Directory.GetFiles(directory.FullName).Order(StringComparer.Ordinal).ToList();
            Assert.Equal([stem + ".001", stem + ".002", stem + ".003"], parts);
            Assert.All(parts, p => Assert.True(new FileInfo(p).Length < 4096));
            Assert.Equal(data, parts.SelectMany(File.ReadAllBytes).ToArray());

            // Read back as one stream from the first part.
            await using var source = BundleSource.Open([stem + ".001"]);
            using var joined = new MemoryStream();
            await source.Tar.CopyToAsync(joined);
            Assert.Equal(data, joined.ToArray());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
