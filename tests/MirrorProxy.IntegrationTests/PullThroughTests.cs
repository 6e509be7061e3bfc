using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>Real clients pulling through the real mirror from a real upstream.</summary>
[Collection(PullThroughCollection.Name)]
public sealed class PullThroughTests(PullThroughFixture fixture) : IAsyncLifetime
{
    private readonly TempDirectory _work = new("pull");
    private MirrorServer _mirror = null!;

    public async Task InitializeAsync() => _mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        _work.Dispose();
    }

    [Fact]
    public async Task SkopeoCopyAll_ByPathPrefix_ColdThenWarm_ByteForByte()
    {
        var image = fixture.MultiArch;
        var source = $"docker://{_mirror.HostPort}/docker.io/{image.Repository}:{image.Tag}";

        (await Skopeo.CopyAsync(source, $"oci:{_work.Combine("cold")}:x", all: true)).EnsureSuccess();
        AssertOciLayoutHolds(_work.Combine("cold"), image);

        var blobGets = await fixture.Upstream.CountRequestsAsync("GET", "/blobs/");
        (await Skopeo.CopyAsync(source, $"oci:{_work.Combine("warm")}:x", all: true)).EnsureSuccess();
        AssertOciLayoutHolds(_work.Combine("warm"), image);

        Assert.Equal(blobGets, await fixture.Upstream.CountRequestsAsync("GET", "/blobs/"));
    }

    [Fact]
    public async Task Containerd_PullsThroughMirrorByNs_ColdThenWarm()
    {
        var image = fixture.MultiArch;
        var hosts = _work.Combine("hosts");
        ContainerdDaemon.WriteHostsToml(hosts, "docker.io", _mirror.BaseUri, mirrorOnly: true);
        var reference = $"docker.io/{image.Repository}:{image.Tag}";
        var amd64 = image.GetManifest(OciPlatform.LinuxAmd64);
        var getsBefore = new Dictionary<string, int>();
        foreach (var blob in amd64.Blobs)
        {
            getsBefore[blob.Digest] = await fixture.Upstream.CountRequestsAsync("GET", "/blobs/" + blob.Digest);
        }

        await using (var cold = await ContainerdDaemon.StartAsync())
        {
            (await cold.PullAsync(reference, hosts, "linux/amd64")).EnsureSuccess();
            var content = (await cold.ListContentAsync()).Select(c => c.Digest).ToHashSet();
            Assert.Contains(image.Digest, content);
            Assert.All(amd64.Blobs, blob => Assert.Contains(blob.Digest, content));
            foreach (var layer in amd64.Layers)
            {
                Assert.Equal(layer.Content, await cold.GetContentAsync(layer.Digest));
            }
        }

        // Other tests pull the same image from the shared upstream through their own mirrors: count this pull's GETs.
        foreach (var blob in amd64.Blobs)
        {
            Assert.Equal(getsBefore[blob.Digest] + 1, await fixture.Upstream.CountRequestsAsync("GET", "/blobs/" + blob.Digest));
        }

        await fixture.Upstream.SyncLogAsync();
        var before = fixture.Upstream.GetRequests().Count(r => r.Uri.Contains("/team/app/", StringComparison.Ordinal));
        await using (var warm = await ContainerdDaemon.StartAsync())
        {
            (await warm.PullAsync(reference, hosts, "linux/amd64")).EnsureSuccess();
            Assert.Contains(image.Digest, (await warm.ListContentAsync()).Select(c => c.Digest));
        }

        await fixture.Upstream.SyncLogAsync();
        var after = fixture.Upstream.GetRequests().Count(r => r.Uri.Contains("/team/app/", StringComparison.Ordinal));
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task HelmChartArtifact_FetchedByteForByte_WithStoredContentType()
    {
        var chart = fixture.Chart;
        var manifest = chart.Manifests.Single();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v2/docker.io/{chart.Repository}/manifests/{chart.Tag}");
        // oras-go (Helm 3.13+) sends these types and no */*.
        foreach (var type in OciMediaTypes.AllManifestTypes.Append("application/vnd.oci.artifact.manifest.v1+json"))
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }

        using var response = await _mirror.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(chart.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(chart.MediaType, response.Content.Headers.ContentType!.MediaType);
        Assert.Equal(chart.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());

        foreach (var blob in manifest.Blobs)
        {
            Assert.Equal(blob.Content, await _mirror.Client.GetByteArrayAsync($"/v2/docker.io/{chart.Repository}/blobs/{blob.Digest}"));
        }

        Assert.Contains(manifest.Blobs, b => b.MediaType == OciMediaTypes.HelmChartContent);
    }

    [Fact]
    public async Task SixteenConcurrentColdGets_OfLargeBlob_CostOneUpstreamGet()
    {
        var layer = fixture.Large.Layers.Single();
        var url = $"/v2/{fixture.Large.Repository}/blobs/{layer.Digest}?ns=docker.io";
        var getsBefore = await fixture.Upstream.CountRequestsAsync("GET", "/blobs/" + layer.Digest);

        var bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            using var response = await _mirror.Client.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return OciMediaTypes.Digest(await response.Content.ReadAsByteArrayAsync());
        }));

        Assert.All(bodies, digest => Assert.Equal(layer.Digest, digest));
        Assert.Equal(getsBefore + 1, await fixture.Upstream.CountRequestsAsync("GET", "/blobs/" + layer.Digest));
    }

    [Fact]
    public async Task BasicAuthUpstream_PulledWithConfiguredCredentials()
    {
        var image = fixture.Private;
        using (var anonymous = fixture.AuthUpstream.CreateHttpClient(authenticated: false))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/v2/{image.Repository}/manifests/{image.Tag}")).StatusCode);
        }

        (await Skopeo.CopyAsync($"docker://{_mirror.HostPort}/auth.test/{image.Repository}:{image.Tag}", $"oci:{_work.Combine("private")}:x", all: true)).EnsureSuccess();
        AssertOciLayoutHolds(_work.Combine("private"), image);
    }

    [Fact]
    public async Task BasicAuthUpstream_WithoutCredentials_AnswersDenied()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("no-creds"), withCredentials: false);

        using var response = await mirror.Client.GetAsync($"/v2/auth.test/{fixture.Private.Repository}/manifests/{fixture.Private.Tag}");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("DENIED", await ErrorCodeAsync(response));
    }

    [Fact]
    public async Task IndexDeletedWhileStopped_CacheStillServesEverything_WithUpstreamGone()
    {
        var image = fixture.MultiArch;
        (await Skopeo.CopyAsync($"docker://{_mirror.HostPort}/docker.io/{image.Repository}:{image.Tag}", $"oci:{_work.Combine("fill")}:x", all: true)).EnsureSuccess();
        var cache = _mirror.CacheDirectory;
        await _mirror.DisposeAsync();

        Directory.Delete(Path.Combine(cache, "index"), recursive: true);
        _mirror = await MirrorServer.StartAsync(cache, [("docker.io", new Uri("http://127.0.0.1:1"))]);

        using var byTag = await _mirror.Client.GetAsync($"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io");
        Assert.Equal(HttpStatusCode.OK, byTag.StatusCode);
        Assert.Equal(image.ManifestBytes, await byTag.Content.ReadAsByteArrayAsync());
        foreach (var manifest in image.Manifests)
        {
            Assert.Equal(manifest.Content, await _mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/manifests/{manifest.Digest}?ns=docker.io"));
        }

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await _mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }
    }

    [Fact]
    public async Task HeadManifestByTag_CarriesDigestLengthTypeAndNamespace()
    {
        var image = fixture.MultiArch;
        using var request = new HttpRequestMessage(HttpMethod.Head, $"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io");
        request.Headers.TryAddWithoutValidation("Accept", string.Join(", ", OciMediaTypes.AllManifestTypes) + ", */*");

        using var response = await _mirror.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(image.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(image.ManifestSize, response.Content.Headers.ContentLength);
        Assert.Equal(OciMediaTypes.ImageIndex, response.Content.Headers.ContentType!.ToString());
        Assert.Equal("docker.io", response.Headers.GetValues("OCI-Namespace").Single());
        Assert.Equal("registry/2.0", response.Headers.GetValues("Docker-Distribution-API-Version").Single());
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task DockerSchema2Image_SingleSegmentName_GetsLibraryPrefix()
    {
        var image = fixture.DockerImage;

        using var response = await _mirror.Client.GetAsync($"/v2/docker.io/busybox/manifests/{image.Tag}");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(image.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(OciMediaTypes.DockerManifestV2, response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task TagsList_PaginatesWithLinkRewrittenToTheMirror_KeepingNs()
    {
        foreach (var tag in new[] { "a", "b", "c" })
        {
            await OciImageFactory.PushDockerImageAsync(fixture.Upstream, "paged/repo", tag, "paged");
        }

        using var first = await _mirror.Client.GetAsync("/v2/paged/repo/tags/list?n=2&ns=docker.io");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var (name, tags) = await ReadTagsAsync(first);
        Assert.Equal("paged/repo", name);
        Assert.Equal(["a", "b"], tags);
        var link = first.Headers.GetValues("Link").Single();
        Assert.StartsWith("</v2/paged/repo/tags/list?", link, StringComparison.Ordinal);
        Assert.Contains("ns=docker.io", link, StringComparison.Ordinal);
        Assert.EndsWith("rel=\"next\"", link, StringComparison.Ordinal);

        var next = link[1..link.IndexOf('>')];
        using var second = await _mirror.Client.GetAsync(next);
        Assert.Equal(["c"], (await ReadTagsAsync(second)).Tags);

        using var byPrefix = await _mirror.Client.GetAsync("/v2/docker.io/paged/repo/tags/list");
        var all = await ReadTagsAsync(byPrefix);
        Assert.Equal("docker.io/paged/repo", all.Name);
        Assert.Equal(["a", "b", "c"], all.Tags);
    }

    [Fact]
    public async Task UnknownContent_404WithOciCodes()
    {
        using var manifest = await _mirror.Client.GetAsync("/v2/team/app/manifests/no-such-tag?ns=docker.io");
        Assert.Equal(HttpStatusCode.NotFound, manifest.StatusCode);
        Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(manifest));

        using var blob = await _mirror.Client.GetAsync($"/v2/team/app/blobs/sha256:{new string('0', 64)}?ns=docker.io");
        Assert.Equal(HttpStatusCode.NotFound, blob.StatusCode);
        Assert.Equal("BLOB_UNKNOWN", await ErrorCodeAsync(blob));

        using var referrers = await _mirror.Client.GetAsync($"/v2/team/app/referrers/{fixture.MultiArch.Digest}?ns=docker.io");
        Assert.Equal(HttpStatusCode.NotFound, referrers.StatusCode); // distribution 2.8 has no referrers API: clients fall back to the tag schema
    }

    private static void AssertOciLayoutHolds(string layout, TestImage image)
    {
        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", blob.Hex)));
        }

        Assert.Equal(image.ManifestBytes, File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", image.Digest[7..])));
        foreach (var manifest in image.Manifests)
        {
            Assert.Equal(manifest.Content, File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", manifest.Digest[7..])));
        }
    }

    private static async Task<(string Name, string[] Tags)> ReadTagsAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return (json.RootElement.GetProperty("name").GetString()!, json.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!).ToArray());
    }

    internal static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return json.RootElement.GetProperty("errors")[0].GetProperty("code").GetString();
    }
}
