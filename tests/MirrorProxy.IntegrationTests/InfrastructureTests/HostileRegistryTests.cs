using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>Each misbehaviour of the hostile registry, seen by a plain HttpClient.</summary>
public sealed class HostileRegistryTests : IAsyncLifetime
{
    private readonly TestImage _image = OciImageFactory.BuildMultiArchImage("hostile/app", "v1", "hostile");
    private HostileRegistry _registry = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _registry = await HostileRegistry.StartAsync(_image);
        _client = NewClient(TimeSpan.FromSeconds(10));
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _registry.DisposeAsync();
    }

    private string TagPath => $"v2/{_image.Repository}/manifests/{_image.Tag}";

    private OciBlob Layer => _image.Manifests[0].Layers[2];

    private string BlobPath => $"v2/{_image.Repository}/blobs/{Layer.Digest}";

    [Fact]
    public async Task Healthy_ServesManifestsByTagAndDigestAndBlobs_AndCountsEachKind()
    {
        using (var response = await _client.GetAsync(TagPath))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(_image.MediaType, response.Content.Headers.ContentType!.MediaType);
            Assert.Equal(_image.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
            Assert.Equal(_image.ManifestBytes, await response.Content.ReadAsByteArrayAsync());
        }

        using (var head = await _client.SendAsync(new HttpRequestMessage(HttpMethod.Head, TagPath)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(_image.ManifestSize, head.Content.Headers.ContentLength);
            Assert.Equal(_image.Digest, head.Headers.GetValues("Docker-Content-Digest").Single());
        }

        var child = _image.ChildManifests[1];
        Assert.Equal(child.Content, await _client.GetByteArrayAsync($"v2/{_image.Repository}/manifests/{child.Digest}"));
        Assert.Equal(Layer.Content, await _client.GetByteArrayAsync(BlobPath));
        using (var head = await _client.SendAsync(new HttpRequestMessage(HttpMethod.Head, BlobPath)))
        {
            Assert.Equal(Layer.Size, head.Content.Headers.ContentLength);
        }

        using (var ranged = new HttpRequestMessage(HttpMethod.Get, BlobPath) { Headers = { Range = new RangeHeaderValue(100, 199) } })
        using (var response = await _client.SendAsync(ranged))
        {
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            Assert.Equal(Layer.Content.AsSpan(100, 100).ToArray(), await response.Content.ReadAsByteArrayAsync());
        }

        using (var missing = await _client.GetAsync($"v2/{_image.Repository}/manifests/nope"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(missing));
        }

        Assert.Equal(2, _registry.Count(HostileEndpoints.TagManifestGet));
        Assert.Equal(1, _registry.Count(HostileEndpoints.TagManifestHead));
        Assert.Equal(1, _registry.Count(HostileEndpoints.DigestManifestGet));
        Assert.Equal(2, _registry.Count(HostileEndpoints.BlobGet));
        Assert.Equal(1, _registry.Count(HostileEndpoints.BlobHead));
        Assert.Equal(7, _registry.Count(HostileEndpoints.All));
        _registry.ResetCounts();
        Assert.Equal(0, _registry.Count(HostileEndpoints.All));
    }

    [Fact]
    public async Task Hang_AcceptsAndNeverAnswersHeaders_OnlyOnTheKindItIsSetFor()
    {
        _registry.Set(HostileEndpoints.TagManifestGet, HostileBehavior.Hang);
        using var impatient = NewClient(TimeSpan.FromSeconds(1));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient.GetAsync(TagPath, HttpCompletionOption.ResponseHeadersRead));

        using (var head = await impatient.SendAsync(new HttpRequestMessage(HttpMethod.Head, TagPath)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }

        Assert.Equal(Layer.Content, await impatient.GetByteArrayAsync(BlobPath));
        Assert.Equal(1, _registry.Count(HostileEndpoints.TagManifestGet));
        Assert.Equal(HostileFault.Hang, _registry.BehaviorOf(HostileEndpoints.TagManifestGet).Fault);

        _registry.Heal();
        Assert.Equal(_image.ManifestBytes, await impatient.GetByteArrayAsync(TagPath));
    }

    [Theory]
    [InlineData(400)]
    [InlineData(404)]
    [InlineData(407)]
    [InlineData(418)]
    [InlineData(429)]
    [InlineData(500)]
    [InlineData(503)]
    public async Task Status_AnswersTheStatusWithAnOciErrorBody(int status)
    {
        var retryAfter = status is 429 or 503 ? TimeSpan.FromSeconds(30) : (TimeSpan?)null;
        _registry.Set(HostileEndpoints.Manifests | HostileEndpoints.Blobs, HostileBehavior.Status(status, retryAfter));

        using var response = await _client.GetAsync(TagPath);
        using var head = await _client.SendAsync(new HttpRequestMessage(HttpMethod.Head, BlobPath));

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(status, (int)head.StatusCode);
        Assert.False(string.IsNullOrEmpty(await ErrorCodeAsync(response)));
        Assert.Equal(retryAfter, response.Headers.RetryAfter?.Delta);
        Assert.Equal(status == 407, response.Headers.ProxyAuthenticate.Count == 1);
    }

    [Fact]
    public async Task RedirectLoop_RedirectsForEver_ClientStopsAtItsLimit()
    {
        _registry.Set(HostileEndpoints.TagManifestGet, HostileBehavior.RedirectLoop);
        using var following = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = true, MaxAutomaticRedirections = 5 })
        {
            BaseAddress = _registry.BaseUri,
            Timeout = TimeSpan.FromSeconds(10),
        };

        using var response = await following.GetAsync(TagPath);

        // .NET hands back the last 3xx once its limit is reached.
        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal(6, _registry.Count(HostileEndpoints.TagManifestGet));
        Assert.Contains("hop=6", response.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CaptivePortal_AnswersAnHtmlLoginPage_ForEveryPathAndForHead()
    {
        _registry.Set(HostileEndpoints.All, HostileBehavior.CaptivePortal);

        foreach (var path in new[] { "v2/", TagPath, BlobPath, "token" })
        {
            using var response = await _client.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
            Assert.Contains("<html>", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.False(response.Headers.Contains("Docker-Content-Digest"));
        }

        using var head = await _client.SendAsync(new HttpRequestMessage(HttpMethod.Head, TagPath));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("text/html", head.Content.Headers.ContentType!.MediaType);
        Assert.True(head.Content.Headers.ContentLength > 0);
    }

    [Fact]
    public async Task Trickle_SendsTheHeadersThenOneBytePerInterval()
    {
        var interval = TimeSpan.FromMilliseconds(300);
        _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.Trickle(interval));

        using var response = await _client.GetAsync(BlobPath, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Layer.Size, response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync();
        var stopwatch = Stopwatch.StartNew();
        var received = new byte[3];
        for (var i = 0; i < received.Length; i++)
        {
            Assert.Equal(1, await body.ReadAsync(received.AsMemory(i, 1)));
        }

        Assert.True(stopwatch.Elapsed >= 2 * interval, $"3 bytes came in {stopwatch.ElapsedMilliseconds} ms");
        Assert.Equal(Layer.Content.AsSpan(0, 3).ToArray(), received);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EndlessBody_SendsBytesForEver_WithoutOrWithAHugeLength(bool announceLength)
    {
        _registry.Set(HostileEndpoints.TagManifestGet, HostileBehavior.EndlessBody(announceLength));

        using var response = await _client.GetAsync(TagPath, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(announceLength ? 1L << 40 : null, response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        long total = 0;
        while (total < 16L * 1024 * 1024)
        {
            var count = await body.ReadAsync(buffer);
            Assert.True(count > 0, $"the body ended after {total} bytes");
            total += count;
        }
    }

    [Fact]
    public async Task LyingLength_AnnouncesMoreThanItSends_ThenCloses()
    {
        _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.LyingLength(4096));

        using var response = await _client.GetAsync(BlobPath, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(Layer.Size + 4096, response.Content.Headers.ContentLength);
        var failure = await Record.ExceptionAsync(() => response.Content.ReadAsByteArrayAsync());
        Assert.True(failure is HttpRequestException or IOException, $"expected a truncated body, got {failure?.ToString() ?? "a complete one"}");
    }

    [Fact]
    public async Task Corrupt_KeepsLengthAndDigestHeader_ButNotTheBytes()
    {
        _registry.Set(HostileEndpoints.BlobGet | HostileEndpoints.TagManifestGet, HostileBehavior.Corrupt);

        using var response = await _client.GetAsync(BlobPath);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Layer.Size, body.LongLength);
        Assert.Equal(Layer.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.NotEqual(Layer.Digest, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(body)));
        Assert.NotEqual(_image.ManifestBytes, await _client.GetByteArrayAsync(TagPath));
    }

    [Fact]
    public async Task GarbageAndAbort_AnswerNonJsonOrNothing()
    {
        _registry.Set(HostileEndpoints.TagManifestGet, HostileBehavior.Garbage);
        _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.Abort);

        using var garbage = await _client.GetAsync(TagPath);
        Assert.Equal("application/json", garbage.Content.Headers.ContentType!.MediaType);
        var text = await garbage.Content.ReadAsStringAsync();
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(text));
        await Assert.ThrowsAsync<HttpRequestException>(() => _client.GetAsync(BlobPath));
    }

    [Fact]
    public async Task BearerChallenge_TokenOpensTheRegistry_TheTokenEndpointCanHangFailGarbleOrRefuse()
    {
        _registry.RequireBearerToken = true;

        using (var challenged = await _client.GetAsync(TagPath))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, challenged.StatusCode);
            var challenge = Assert.Single(challenged.Headers.WwwAuthenticate);
            Assert.Equal("Bearer", challenge.Scheme);
            Assert.Equal($"realm=\"{_registry.Realm}\",service=\"{HostileRegistry.Service}\",scope=\"repository:{_image.Repository}:pull\"", challenge.Parameter);
        }

        var token = await GetTokenAsync(_client, _registry.Realm);
        using (var authorized = new HttpRequestMessage(HttpMethod.Get, TagPath) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) } })
        using (var response = await _client.SendAsync(authorized))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using var impatient = NewClient(TimeSpan.FromSeconds(1));
        _registry.Set(HostileEndpoints.Token, HostileBehavior.Hang);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient.GetAsync(_registry.Realm));

        _registry.Set(HostileEndpoints.Token, HostileBehavior.Status(500));
        using (var failed = await _client.GetAsync(_registry.Realm))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }

        _registry.Set(HostileEndpoints.Token, HostileBehavior.Garbage);
        await Assert.ThrowsAnyAsync<JsonException>(() => GetTokenAsync(_client, _registry.Realm));

        _registry.Set(HostileEndpoints.Token, HostileBehavior.Refuse);
        using (var challenged = await _client.GetAsync(TagPath))
        {
            var challenge = Assert.Single(challenged.Headers.WwwAuthenticate);
            Assert.Contains($"realm=\"{_registry.RefusedRealm}\"", challenge.Parameter, StringComparison.Ordinal);
        }

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => _client.GetAsync(_registry.RefusedRealm));
        Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(refused.InnerException).SocketErrorCode);
        Assert.Equal(4, _registry.Count(HostileEndpoints.Token));
        Assert.Throws<ArgumentException>(() => _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.Refuse));
    }

    [Fact]
    public async Task Dispose_EndsRequestsThatHang()
    {
        _registry.Set(HostileEndpoints.All, HostileBehavior.Hang);
        using var patient = NewClient(TimeSpan.FromMinutes(2));
        var hung = patient.GetAsync(TagPath);
        await Eventually.TrueAsync(() => _registry.Count(HostileEndpoints.TagManifestGet) == 1, TimeSpan.FromSeconds(10), "the request arrives");

        await _registry.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        var failure = await Record.ExceptionAsync(() => hung.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(failure is HttpRequestException or OperationCanceledException, $"expected the hung request to fail, got {failure?.ToString() ?? "an answer"}");
    }

    private HttpClient NewClient(TimeSpan timeout)
        => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = _registry.BaseUri,
            Timeout = timeout,
            DefaultRequestHeaders = { Accept = { new(OciMediaTypes.ImageIndex), new(OciMediaTypes.ImageManifest) } },
        };

    private static async Task<string> GetTokenAsync(HttpClient client, Uri realm)
    {
        using var response = await client.GetAsync($"{realm}?service={HostileRegistry.Service}&scope=repository:hostile/app:pull");
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("token").GetString()!;
    }

    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("errors")[0].GetProperty("code").GetString();
    }
}
