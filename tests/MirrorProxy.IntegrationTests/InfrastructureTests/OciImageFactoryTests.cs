using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>Pure (no I/O) checks of the generated content.</summary>
public sealed class OciImageFactoryTests
{
    [Fact]
    public void SameSeedGivesIdenticalBytesAndDifferentSeedsDiffer()
    {
        var a = OciImageFactory.BuildMultiArchImage("r", "t", "seed-1");
        var b = OciImageFactory.BuildMultiArchImage("r", "t", "seed-1");
        var c = OciImageFactory.BuildMultiArchImage("r", "t", "seed-2");
        Assert.Equal(a.ManifestBytes, b.ManifestBytes);
        Assert.Equal(a.Blobs.Select(x => x.Digest), b.Blobs.Select(x => x.Digest));
        Assert.Empty(a.Blobs.Select(x => x.Digest).Intersect(c.Blobs.Select(x => x.Digest)));
        Assert.NotEqual(a.Digest, c.Digest);
        Assert.Equal(OciImageFactory.BuildHelmChart("r", "1.0.0", "s").Digest, OciImageFactory.BuildHelmChart("r", "1.0.0", "s").Digest);
        Assert.Equal(OciImageFactory.BuildDockerImage("r", "t", "s").Digest, OciImageFactory.BuildDockerImage("r", "t", "s").Digest);
    }

    [Fact]
    public void LayersAreRealGzipTarsMatchingTheConfigDiffIds()
    {
        var image = OciImageFactory.BuildMultiArchImage("r", "t", "tar-check");
        foreach (var manifest in image.Manifests)
        {
            using var config = JsonDocument.Parse(manifest.Config.Content);
            Assert.Equal(manifest.Platform!.Architecture, config.RootElement.GetProperty("architecture").GetString());
            var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(e => e.GetString()).ToArray();
            Assert.Equal(manifest.Layers.Select(l => l.UncompressedDigest), diffIds);

            foreach (var layer in manifest.Layers)
            {
                var tar = Gunzip(layer.Content);
                Assert.Equal(layer.UncompressedDigest, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(tar)));
                var entries = ReadTar(tar);
                Assert.Contains(entries, e => e.Name.EndsWith("/random.bin", StringComparison.Ordinal) && e.Length > 1000);
                Assert.Contains(entries, e => e.Name.EndsWith("/README.txt", StringComparison.Ordinal));
            }

            var sizes = manifest.Layers.Select(l => l.Size).Order().ToArray();
            Assert.InRange(sizes[0], 1500, 3 * 1024);
            Assert.InRange(sizes[1], 280 * 1024, 320 * 1024);
            Assert.InRange(sizes[2], 3 * 1024 * 1024 - 16 * 1024, 3 * 1024 * 1024 + 64 * 1024);
        }
    }

    [Fact]
    public void LargeBlobLayerIsAValidGzipTarOfTheRequestedSize()
    {
        const long size = 1024 * 1024 + 7;
        var image = OciImageFactory.BuildLargeBlobImage("r", "t", "large-check", size);
        var layer = Assert.Single(image.Layers);
        Assert.InRange(layer.Size, size, size + 16 * 1024);
        var tar = Gunzip(layer.Content);
        Assert.Equal(layer.UncompressedDigest, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(tar)));
        var data = Assert.Single(ReadTar(tar), e => e.Name == "mirrorproxy/large/data.bin");
        Assert.Equal(size, data.Length);
        Assert.Equal(DeterministicData.Bytes("large-check/large-blob", (int)size), data.Data);
    }

    [Fact]
    public void HelmChartLayerContainsChartYaml()
    {
        var chart = OciImageFactory.BuildHelmChart("charts/mychart", "0.2.0", "helm-check");
        var manifest = Assert.Single(chart.Manifests);
        using var config = JsonDocument.Parse(manifest.Config.Content);
        Assert.Equal("mychart", config.RootElement.GetProperty("name").GetString());
        Assert.Equal("0.2.0", config.RootElement.GetProperty("version").GetString());
        var entries = ReadTar(Gunzip(Assert.Single(manifest.Layers).Content));
        var chartYaml = Assert.Single(entries, e => e.Name == "mychart/Chart.yaml");
        Assert.Contains("name: mychart", Encoding.UTF8.GetString(chartYaml.Data), StringComparison.Ordinal);
        Assert.Contains("version: 0.2.0", Encoding.UTF8.GetString(chartYaml.Data), StringComparison.Ordinal);
    }

    [Fact]
    public void ManifestJsonIsCompactAndKeepsPlusLiteral()
    {
        var image = OciImageFactory.BuildMultiArchImage("r", "t", "json-check");
        var text = Encoding.UTF8.GetString(image.ManifestBytes);
        Assert.StartsWith("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[""", text, StringComparison.Ordinal);
        Assert.Contains("tar+gzip", Encoding.UTF8.GetString(image.ChildManifests[0].Content), StringComparison.Ordinal);
        Assert.Equal(image.Digest, OciMediaTypes.Digest(image.ManifestBytes));
    }

    [Fact]
    public void DeterministicDataStreamIsSeekableAndConsistent()
    {
        var all = DeterministicData.Bytes("stream", 1000);
        using var stream = new DeterministicDataStream("stream", 1000);
        stream.Position = 13;
        var buffer = new byte[101];
        Assert.Equal(101, stream.Read(buffer));
        Assert.Equal(all.AsSpan(13, 101).ToArray(), buffer);
        stream.Position = 990;
        Assert.Equal(10, stream.Read(buffer));
        Assert.Equal(0, stream.Read(buffer));
    }

    private static byte[] Gunzip(byte[] gz)
    {
        using var input = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }

    private static List<(string Name, long Length, byte[] Data)> ReadTar(byte[] tar)
    {
        var entries = new List<(string, long, byte[])>();
        using var reader = new TarReader(new MemoryStream(tar));
        while (reader.GetNextEntry() is { } entry)
        {
            var data = new MemoryStream();
            entry.DataStream?.CopyTo(data);
            entries.Add((entry.Name, entry.Length, data.ToArray()));
        }

        return entries;
    }
}
