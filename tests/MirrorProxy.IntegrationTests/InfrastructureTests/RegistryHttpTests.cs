using System.Net;
using System.Net.Http.Headers;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>The pushed content is served back byte for byte by the real registry, and request counting works.</summary>
[Collection(SharedRegistryCollection.Name)]
public sealed class RegistryHttpTests(SharedRegistryFixture fixture)
{
    [Fact]
    public async Task AllPushedManifestsAndBlobsAreServedByteForByte()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var client = fixture.Registry.CreateHttpClient();
        foreach (var image in new[] { fixture.MultiArch, fixture.Docker, fixture.Helm })
        {
            var (type, bytes, digest) = await GetManifestAsync(client, image.Repository, image.Tag, cts.Token);
            Assert.Equal(image.MediaType, type);
            Assert.Equal(image.Digest, digest);
            Assert.Equal(image.ManifestBytes, bytes);

            foreach (var child in image.ChildManifests)
            {
                var (childType, childBytes, childDigest) = await GetManifestAsync(client, image.Repository, child.Digest, cts.Token);
                Assert.Equal(child.MediaType, childType);
                Assert.Equal(child.Digest, childDigest);
                Assert.Equal(child.Content, childBytes);
            }

            foreach (var blob in image.Blobs)
            {
                var served = await client.GetByteArrayAsync($"v2/{image.Repository}/blobs/{blob.Digest}", cts.Token);
                Assert.Equal(blob.Size, served.LongLength);
                Assert.Equal(blob.Content, served);
            }
        }
    }

    [Fact]
    public void MultiArchImageHasTheExpectedShape()
    {
        var image = fixture.MultiArch;
        Assert.Equal(OciMediaTypes.ImageIndex, image.MediaType);
        Assert.Equal(2, image.ChildManifests.Count);
        Assert.Equal([OciPlatform.LinuxAmd64, OciPlatform.LinuxArm64], image.ChildManifests.Select(m => m.Platform));
        foreach (var manifest in image.ChildManifests)
        {
            Assert.Equal(OciMediaTypes.ImageManifest, manifest.MediaType);
            Assert.Equal(OciMediaTypes.ImageConfig, manifest.Config.MediaType);
            Assert.Equal(3, manifest.Layers.Count);
            Assert.All(manifest.Layers, l => Assert.Equal(OciMediaTypes.ImageLayerTarGzip, l.MediaType));
            Assert.Equal(3, manifest.Layers.Select(l => l.Size).Distinct().Count());
        }

        // One shared layer: 2 configs + 1 shared + 2x2 platform layers.
        Assert.Equal(7, image.Blobs.Count);
        var docker = Assert.Single(fixture.Docker.Manifests);
        Assert.Empty(fixture.Docker.ChildManifests);
        Assert.Equal(OciMediaTypes.DockerManifestV2, docker.MediaType);
        Assert.Equal(OciMediaTypes.DockerImageConfig, docker.Config.MediaType);
        Assert.All(docker.Layers, l => Assert.Equal(OciMediaTypes.DockerLayerTarGzip, l.MediaType));
        Assert.Equal(OciMediaTypes.HelmConfig, fixture.Helm.Manifests[0].Config.MediaType);
        Assert.Equal(OciMediaTypes.HelmChartContent, Assert.Single(fixture.Helm.Manifests[0].Layers).MediaType);
    }

    [Fact]
    public async Task CountRequestsCountsOneBlobGetExactlyOnce()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var registry = fixture.Registry;
        var blob = fixture.MultiArch.Manifests[0].Layers[2];
        using var client = registry.CreateHttpClient();

        await registry.SyncLogAsync(cts.Token);
        registry.ClearLog();
        Assert.Equal(0, registry.CountRequests("GET", blob.Digest));

        var served = await client.GetByteArrayAsync($"v2/{fixture.MultiArch.Repository}/blobs/{blob.Digest}", cts.Token);
        Assert.Equal(blob.Content, served);

        Assert.Equal(1, await registry.CountRequestsAsync("GET", "/blobs/" + blob.Digest, cts.Token));
        Assert.Equal(0, registry.CountRequests("HEAD", "/blobs/" + blob.Digest));

        using (var head = new HttpRequestMessage(HttpMethod.Head, $"v2/{fixture.MultiArch.Repository}/blobs/{blob.Digest}"))
        using (var response = await client.SendAsync(head, cts.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(1, await registry.CountRequestsAsync("HEAD", "/blobs/" + blob.Digest, cts.Token));
        Assert.Equal(1, registry.CountRequests("GET", "/blobs/" + blob.Digest));
        var request = Assert.Single(registry.GetRequests(), r => r.Method == "GET");
        Assert.Equal(200, request.Status);
        Assert.Equal(blob.Size, request.ResponseBytes);

        registry.ClearLog();
        Assert.Empty(registry.GetRequests());
    }

    internal static async Task<(string? MediaType, byte[] Bytes, string? Digest)> GetManifestAsync(HttpClient client, string repository, string reference, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{repository}/manifests/{reference}");
        foreach (var type in OciMediaTypes.AllManifestTypes)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }

        using var response = await client.SendAsync(request, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var digest = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.First() : null;
        return (response.Content.Headers.ContentType?.MediaType, bytes, digest);
    }
}
