using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Coordination;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.PullThrough;

public sealed class BlobServiceTests : IDisposable
{
    private readonly TestCache _cache = new();
    private readonly TestRegistryUpstream _registry = new();
    private readonly UpstreamRegistry _upstream;
    private readonly Route _route;
    private BlobService _blobs;

    public BlobServiceTests()
    {
        _upstream = TestUpstreams.Create(new UpstreamOptions { Name = "registry.test", Url = "https://registry.test" }, _registry.Handler);
        _route = new Route(_upstream, "team/app", null);
        _blobs = Create(_cache.Options);
    }

    [Fact]
    public async Task Get_Cold_DownloadsOnceStreamsVerifiedBytesAndStoresThem_ThenHits()
    {
        var content = Bytes(300_000);
        var digest = _registry.AddBlob(content);

        var cold = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);

        Assert.Equal(BlobStatus.Started, cold.Status);
        Assert.Equal(content.Length, cold.Length);
        Assert.Equal(content, await ReadAsync(cold));
        await Eventually(() => _blobs.ActiveDownloads == 0);

        var warm = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);
        Assert.Equal(BlobStatus.Hit, warm.Status);
        Assert.Equal(content, await ReadAsync(warm));
        Assert.Equal(1, _registry.Count("GET", "/blobs/"));
    }

    [Fact]
    public async Task Get_ConcurrentColdRequests_JoinOneDownload()
    {
        var content = Bytes(100_000);
        var digest = _registry.AddBlob(content);
        _registry.BlobGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var requests = Enumerable.Range(0, 8).Select(_ => _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None).AsTask()).ToList();
        await Eventually(() => _registry.Count("GET", "/blobs/") == 1);
        _registry.BlobGate.SetResult();
        var results = await Task.WhenAll(requests);

        Assert.Equal(1, results.Count(r => r.Status == BlobStatus.Started));
        Assert.Equal(7, results.Count(r => r.Status == BlobStatus.Joined));
        foreach (var result in results)
        {
            Assert.Equal(content, await ReadAsync(result));
        }

        Assert.Equal(1, _registry.Count("GET", "/blobs/"));
    }

    [Fact]
    public async Task Get_UpstreamSendsCorruptBytes_TheBodyBreaksAndNothingIsStored()
    {
        var content = Bytes(70_000);
        var digest = _registry.AddBlob(content);
        _registry.Override = request => request.RequestUri!.AbsolutePath.Contains("/blobs/", StringComparison.Ordinal)
            ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(Bytes(70_000, seed: 9)) }
            : null;

        var result = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);
        using (result.Body)
        {
            var (sent, _) = await result.Body!.SendAsync(PipeWriter.Create(Stream.Null), 0, result.Length!.Value, CancellationToken.None);
            Assert.Equal(SendResult.SourceFailed, sent);
        }

        await Eventually(() => _blobs.ActiveDownloads == 0);
        Assert.Null(await _cache.Cache.LookupAsync(digest, CancellationToken.None));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_cache.Root, "tmp")));
    }

    [Fact]
    public async Task Get_TruncatedCachedFile_IsQuarantinedAndFetchedAgain()
    {
        var content = Bytes(300_000);
        var digest = _registry.AddBlob(content);
        await ReadAsync(await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None));
        await Eventually(() => _blobs.ActiveDownloads == 0);
        await File.WriteAllBytesAsync(_cache.BlobPath(digest), content[..1000]);

        var again = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);

        Assert.Equal(BlobStatus.Started, again.Status);
        Assert.Equal(content, await ReadAsync(again));
        Assert.Equal(2, _registry.Count("GET", "/blobs/"));
    }

    [Fact]
    public async Task Head_Uncached_AsksTheUpstreamForTheLengthOnly()
    {
        var content = Bytes(5000);
        var digest = _registry.AddBlob(content);

        var head = await _blobs.GetAsync(_route, digest, headOnly: true, CancellationToken.None);

        Assert.True(head.Found);
        Assert.Null(head.Body);
        Assert.Equal(content.Length, head.Length);
        Assert.Equal(1, _registry.Count("HEAD", "/blobs/"));
        Assert.Equal(0, _registry.Count("GET", "/blobs/"));
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound, "NotFound")]
    [InlineData(HttpStatusCode.Forbidden, "Denied")]
    [InlineData(HttpStatusCode.ServiceUnavailable, "Unavailable")]
    [InlineData(HttpStatusCode.Conflict, "Unusable")]
    public async Task Get_UpstreamFailure_IsAValueNamingIt(HttpStatusCode status, string expected)
    {
        _registry.Override = _ => FakeHttpHandler.Status(status);

        var result = await _blobs.GetAsync(_route, Digest.ComputeSha256("absent"u8), headOnly: false, CancellationToken.None);

        Assert.Equal(Enum.Parse<BlobStatus>(expected), result.Status);
        Assert.Null(result.Body);
    }

    [Fact]
    public async Task Get_LargerThanTheCacheKeeps_IsRelayedAndNotKept()
    {
        var content = Bytes(200_000);
        var digest = _registry.AddBlob(content);
        _blobs = Create(new CacheOptions { Path = _cache.Root, MaxBlobSize = new ByteSize(100_000) });

        var result = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);

        Assert.Equal(BlobStatus.Relayed, result.Status);
        Assert.Equal(content, await ReadAsync(result));
        Assert.Null(await _cache.Cache.LookupAsync(digest, CancellationToken.None));
    }

    [Fact]
    public async Task Get_AfterACacheWriteFailure_RelaysForAWhile()
    {
        var content = Bytes(10_000);
        var digest = _registry.AddBlob(content);
        _cache.Cache.Health.WriteFailed(MirrorProxy.Storage.StorageStatus.NoSpace, "a test write");

        var result = await _blobs.GetAsync(_route, digest, headOnly: false, CancellationToken.None);

        Assert.Equal(BlobStatus.Relayed, result.Status);
        Assert.Equal(content, await ReadAsync(result));
        Assert.Null(await _cache.Cache.LookupAsync(digest, CancellationToken.None));
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _cache.Dispose();
    }

    private BlobService Create(CacheOptions options) =>
        new(_cache.Cache, new DownloadCoordinator(new LocalCoordination(), _cache.Cache, Options.Create(new CoordinationOptions()), TimeProvider.System,
                NullLogger<DownloadCoordinator>.Instance),
            new CacheBudget(_cache.Cache, Options.Create(options)), TestUpstreams.Background, TestMetrics.Create(), TimeProvider.System,
            NullLogger<BlobService>.Instance);

    private static async Task<byte[]> ReadAsync(BlobResult result)
    {
        Assert.True(result.Found, result.Detail);
        using (result.Body)
        {
            var output = new MemoryStream();
            var writer = PipeWriter.Create(output);
            var (sent, _) = await result.Body!.SendAsync(writer, 0, result.Length ?? long.MaxValue, CancellationToken.None);
            await writer.CompleteAsync();
            Assert.Equal(SendResult.Complete, sent);
            return output.ToArray();
        }
    }

    private static byte[] Bytes(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task Eventually(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition());
    }
}
