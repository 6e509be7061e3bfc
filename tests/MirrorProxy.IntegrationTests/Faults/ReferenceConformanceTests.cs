using System.Net;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// References that name no manifest, as the OCI conformance suite sends them: 404 with an OCI error body, whatever
/// the upstream (here: one that refuses every connection, so the answer cannot come from it).
/// </summary>
public sealed class ReferenceConformanceTests : IAsyncLifetime
{
    private readonly TempDirectory _work = new("conformance");
    private MirrorServer _mirror = null!;

    public async Task InitializeAsync() =>
        _mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", new Uri("http://127.0.0.1:1"))]);

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        _work.Dispose();
    }

    [Theory]
    [InlineData("team/app", ".INVALID_MANIFEST_NAME")]
    [InlineData("library/busybox", "-starts-with-a-dash")]
    [InlineData("team/app", "a-tag-of-more-than-128-characters-" + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
    public async Task GetManifest_ReferenceThatIsNeitherTagNorDigest_Is404WithAnOciErrorBody(string repository, string reference)
    {
        using var response = await FaultSupport.GetManifestAsync(_mirror.Client, $"/v2/{repository}/manifests/{reference}");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("MANIFEST_UNKNOWN", await FaultSupport.ErrorCodeAsync(response));

        using var head = FaultSupport.ManifestRequest(HttpMethod.Head, $"/v2/{repository}/manifests/{reference}");
        using var headResponse = await _mirror.Client.SendAsync(head);
        Assert.Equal(HttpStatusCode.NotFound, headResponse.StatusCode);
        Assert.Empty(await headResponse.Content.ReadAsByteArrayAsync());
    }
}
