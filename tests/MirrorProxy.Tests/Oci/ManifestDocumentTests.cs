using System.Text;
using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class ManifestDocumentTests
{
    private static string D(char c) => "sha256:" + new string(c, 64);

    private static string Child(char c, string platform, int size) =>
        $"{{\"mediaType\":\"{MediaTypes.OciManifest}\",\"digest\":\"{D(c)}\",\"size\":{size},\"platform\":{{{platform}}}}}";

    [Fact]
    public void TryParse_Index_ReadsPlatforms()
    {
        var json = "{\"schemaVersion\":2,\"mediaType\":\"" + MediaTypes.OciIndex + "\",\"manifests\":["
            + Child('a', "\"os\":\"linux\",\"architecture\":\"amd64\"", 10) + ","
            + Child('b', "\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"", 11) + ","
            + Child('c', "\"os\":\"unknown\",\"architecture\":\"unknown\"", 12) + "]}";

        Assert.True(ManifestDocument.TryParse(Encoding.UTF8.GetBytes(json), MediaTypes.OciIndex, out var document));

        Assert.True(document!.IsIndex);
        Assert.Equal(3, document.Manifests.Count);
        Assert.Equal(new Platform("linux", "arm64", "v8"), document.Manifests[1].Platform);
        Assert.Equal(11, document.Manifests[1].Size);
    }

    [Fact]
    public void TryParse_ImageManifest_ConfigThenLayers()
    {
        var json = $$"""{"schemaVersion":2,"config":{"mediaType":"c","digest":"{{D('c')}}","size":5},"layers":[{"mediaType":"l","digest":"{{D('1')}}","size":7},{"mediaType":"l","digest":"{{D('2')}}","size":8}]}""";

        Assert.True(ManifestDocument.TryParse(Encoding.UTF8.GetBytes(json), MediaTypes.OciManifest, out var document));

        Assert.False(document!.IsIndex);
        Assert.Equal([D('c'), D('1'), D('2')], document.Blobs.Select(b => b.Digest.Value));
    }

    [Fact]
    public void TryParse_Schema1_DistinctBlobSums()
    {
        var json = $$"""{"schemaVersion":1,"fsLayers":[{"blobSum":"{{D('1')}}"},{"blobSum":"{{D('1')}}"},{"blobSum":"{{D('2')}}"}]}""";

        Assert.True(ManifestDocument.TryParse(Encoding.UTF8.GetBytes(json), MediaTypes.DockerSchema1Signed, out var document));

        Assert.Equal([D('1'), D('2')], document!.Layers.Select(b => b.Digest.Value));
        Assert.All(document.Layers, l => Assert.Equal(-1, l.Size));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[]")]
    public void TryParse_NotAManifest_False(string text) => Assert.False(ManifestDocument.TryParse(Encoding.UTF8.GetBytes(text), MediaTypes.OciManifest, out _));

    [Theory]
    [InlineData("linux/amd64", new[] { 'a' }, new string[0])]
    [InlineData("linux/arm64", new[] { 'b' }, new string[0])]
    [InlineData("linux/arm64/v8", new[] { 'b' }, new string[0])]
    [InlineData("linux/amd64,linux/riscv64", new[] { 'a' }, new[] { "linux/riscv64" })]
    [InlineData("all", new[] { 'a', 'b' }, new string[0])]
    public void PlatformSelection_SelectsWhatItNames(string text, char[] expected, string[] absent)
    {
        var manifests = new[]
        {
            new Descriptor(MediaTypes.OciManifest, Digest.TryParse(D('a'), out var a) ? a : default, 1, new Platform("linux", "amd64", null)),
            new Descriptor(MediaTypes.OciManifest, Digest.TryParse(D('b'), out var b) ? b : default, 1, new Platform("linux", "arm64", null)),
            new Descriptor(MediaTypes.OciManifest, Digest.TryParse(D('c'), out var c) ? c : default, 1, new Platform("unknown", "unknown", null)),
        };
        Assert.True(PlatformSelection.TryParse(text, out var selection, out _));

        var chosen = selection!.Select(manifests, out var missing);

        Assert.Equal(expected.Select(D), chosen.Select(m => m.Digest.Value));
        Assert.Equal(absent, missing.Select(p => p.ToString()));
    }

    [Theory]
    [InlineData("linux")]
    [InlineData("linux/amd64/v1/x")]
    [InlineData("linux//amd64")]
    public void PlatformSelection_Rejects(string text) => Assert.False(PlatformSelection.TryParse(text, out _, out _));
}
