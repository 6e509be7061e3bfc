using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

[Collection(SharedRegistryCollection.Name)]
public sealed class SkopeoTests(SharedRegistryFixture fixture)
{
    [Fact]
    public async Task InspectRawReturnsExactlyThePushedManifestBytes()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        foreach (var image in new[] { fixture.MultiArch, fixture.Docker, fixture.Helm })
        {
            var raw = await Skopeo.InspectRawAsync("docker://" + image.Reference(fixture.Registry.HostPort), cts.Token);
            Assert.Equal(image.ManifestBytes, raw);
        }

        var child = fixture.MultiArch.ChildManifests[1];
        var childRaw = await Skopeo.InspectRawAsync($"docker://{fixture.Registry.HostPort}/{fixture.MultiArch.Repository}@{child.Digest}", cts.Token);
        Assert.Equal(child.Content, childRaw);
    }

    [Fact]
    public async Task CopyAllToOciLayoutPreservesEveryBlob()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        using var layout = ShortTempDirectory.Create("oci-");
        var image = fixture.MultiArch;

        var result = await Skopeo.CopyAsync("docker://" + image.Reference(fixture.Registry.HostPort), $"oci:{layout.Path}:v1", all: true, cts.Token);
        result.EnsureSuccess();

        string BlobPath(string digest) => layout.Combine("blobs", "sha256", digest["sha256:".Length..]);
        Assert.Equal(image.ManifestBytes, await File.ReadAllBytesAsync(BlobPath(image.Digest), cts.Token));
        foreach (var child in image.ChildManifests)
        {
            Assert.Equal(child.Content, await File.ReadAllBytesAsync(BlobPath(child.Digest), cts.Token));
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await File.ReadAllBytesAsync(BlobPath(blob.Digest), cts.Token));
        }

        using var index = JsonDocument.Parse(await File.ReadAllBytesAsync(layout.Combine("index.json"), cts.Token));
        var descriptor = Assert.Single(index.RootElement.GetProperty("manifests").EnumerateArray());
        Assert.Equal(image.Digest, descriptor.GetProperty("digest").GetString());
        Assert.Equal(OciMediaTypes.ImageIndex, descriptor.GetProperty("mediaType").GetString());
    }
}
