using System.Net;
using System.Security.Cryptography;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>Upstream faults in the middle of a blob, from a fault-injecting upstream.</summary>
public sealed class FaultInjectionTests : IAsyncLifetime
{
    private const int BlobSize = 3 * 1024 * 1024 + 123;
    private readonly TempDirectory _cache = new();
    private FaultyUpstream _upstream = null!;
    private MirrorServer _mirror = null!;

    public async Task InitializeAsync()
    {
        var blob = new byte[BlobSize];
        new Random(42).NextBytes(blob);
        _upstream = await FaultyUpstream.StartAsync(blob);
        _mirror = await MirrorServer.StartAsync(_cache.Path, [("faulty.test", _upstream.BaseUri)]);
    }

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        await _upstream.DisposeAsync();
        _cache.Dispose();
    }

    private string BlobUrl => $"/v2/faulty.test/team/app/blobs/{_upstream.Digest}";

    private string CachedBlobPath => Path.Combine(_cache.Path, "blobs", "sha256", _upstream.Digest[7..9], _upstream.Digest[7..]);

    [Theory]
    [InlineData(FaultMode.Corrupt)]
    [InlineData(FaultMode.DropMidway)]
    public async Task FaultyBlob_ClientSeesBrokenResponse_NothingCached_UpstreamMarkedDownUntilProbed_ThenServed(FaultMode mode)
    {
        _upstream.Mode = mode;

        var failure = await Record.ExceptionAsync(() => _mirror.Client.GetByteArrayAsync(BlobUrl));

        Assert.True(failure is HttpRequestException or IOException, $"expected a broken response, got {failure?.GetType().Name ?? "a complete body"}");
        await Eventually.TrueAsync(() => Directory.GetFiles(Path.Combine(_cache.Path, "tmp")).Length == 0, TimeSpan.FromSeconds(10), "the temporary file is removed");
        Assert.False(File.Exists(CachedBlobPath), "a blob that did not verify must never be published");

        // A body that broke off or did not verify counts against the upstream: it is marked down, and content it
        // would have to supply fails fast until the probe finds it healthy again.
        _upstream.Mode = FaultMode.Healthy;
        using (var whileDown = await _mirror.Client.GetAsync(BlobUrl))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, whileDown.StatusCode);
            Assert.NotNull(whileDown.Headers.RetryAfter);
        }

        await Eventually.TrueAsync(async () =>
        {
            using var probe = await _mirror.Client.GetAsync("/readyz");
            return (await probe.Content.ReadAsStringAsync()).Contains("\"state\":\"healthy\"", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(20), "the probe brings the upstream back");
        using var response = await _mirror.Client.GetAsync(BlobUrl);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(_upstream.Blob, body);
        Assert.Equal(_upstream.Digest, response.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.True(File.Exists(CachedBlobPath));
        Assert.Equal(_upstream.Digest, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(CachedBlobPath))));
    }

    [Fact]
    public async Task ConcurrentColdRequests_ShareOneUpstreamDownload()
    {
        _upstream.ChunkDelay = TimeSpan.FromMilliseconds(15);

        var bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => _mirror.Client.GetByteArrayAsync(BlobUrl)));

        Assert.All(bodies, body => Assert.Equal(_upstream.Blob, body));
        Assert.Equal(1, _upstream.BlobGets);
    }

    [Fact]
    public async Task FirstClientDisconnects_DownloadFinishesAndIsCached()
    {
        _upstream.ChunkDelay = TimeSpan.FromMilliseconds(10);
        using (var response = await _mirror.Client.GetAsync(BlobUrl, HttpCompletionOption.ResponseHeadersRead))
        {
            await using var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[1024];
            Assert.True(await stream.ReadAsync(buffer) > 0);
        } // disposed: the client is gone

        await Eventually.TrueAsync(() => File.Exists(CachedBlobPath), TimeSpan.FromSeconds(30), "the abandoned download is published");
        Assert.Equal(_upstream.Blob, await File.ReadAllBytesAsync(CachedBlobPath));
        Assert.Equal(1, _upstream.BlobGets);
    }

    [Fact]
    public async Task RangeOnBlobStillDownloading_Gets206WithTheRightBytes()
    {
        _upstream.ChunkDelay = TimeSpan.FromMilliseconds(20);
        var first = _mirror.Client.GetByteArrayAsync(BlobUrl);

        using var request = new HttpRequestMessage(HttpMethod.Get, BlobUrl);
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(1_000_000, 1_000_099);
        using var response = await _mirror.Client.SendAsync(request);
        var part = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal($"bytes 1000000-1000099/{BlobSize}", response.Content.Headers.ContentRange!.ToString());
        Assert.Equal(_upstream.Blob.AsSpan(1_000_000, 100).ToArray(), part);
        Assert.Equal(_upstream.Blob, await first);
        Assert.Equal(1, _upstream.BlobGets);
    }

    [Fact]
    public async Task RangeOnCachedBlob_Gets206_AndBeyondTheEndGets416()
    {
        Assert.Equal(_upstream.Blob, await _mirror.Client.GetByteArrayAsync(BlobUrl));

        using var open = new HttpRequestMessage(HttpMethod.Get, BlobUrl);
        open.Headers.TryAddWithoutValidation("Range", $"bytes={BlobSize - 10}-");
        using var openResponse = await _mirror.Client.SendAsync(open);
        Assert.Equal(HttpStatusCode.PartialContent, openResponse.StatusCode);
        Assert.Equal(_upstream.Blob[^10..], await openResponse.Content.ReadAsByteArrayAsync());

        using var beyond = new HttpRequestMessage(HttpMethod.Get, BlobUrl);
        beyond.Headers.TryAddWithoutValidation("Range", $"bytes={BlobSize}-");
        using var beyondResponse = await _mirror.Client.SendAsync(beyond);
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, beyondResponse.StatusCode);
        Assert.Equal($"bytes */{BlobSize}", beyondResponse.Content.Headers.ContentRange!.ToString());

        using var head = new HttpRequestMessage(HttpMethod.Head, BlobUrl);
        using var headResponse = await _mirror.Client.SendAsync(head);
        Assert.Equal(BlobSize, headResponse.Content.Headers.ContentLength);
        Assert.Equal("bytes", headResponse.Headers.AcceptRanges.Single());
        Assert.Equal(1, _upstream.BlobGets);
    }
}
