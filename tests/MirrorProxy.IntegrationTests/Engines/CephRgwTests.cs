using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Xml.Linq;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Engines;

/// <summary>The shared Ceph RGW answers S3 as the scale-out tests need: signed requests, conditional PUT, ranges, and an endpoint that can go away and come back.</summary>
[Collection(ScaleOutCollection.Name)]
public sealed class CephRgwTests(ScaleOutEngines engines, ITestOutputHelper output)
{
    private static readonly XNamespace s_s3 = "http://s3.amazonaws.com/doc/2006-03-01/";

    [Fact]
    public async Task AnonymousRoot_AnswersWithS3Xml()
    {
        output.WriteLine(engines.StartupReport);
        Assert.Equal(3, engines.Rgw.DaemonProcessIds.Count);
        Assert.Equal(IPAddress.Loopback.ToString(), engines.Rgw.Endpoint.Host);

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var response = await http.GetAsync(engines.Rgw.Endpoint);
        var root = XDocument.Parse(await response.Content.ReadAsStringAsync()).Root!;

        // Anonymous listing is allowed on RGW's defaults (an empty list owned by "anonymous"); a stricter setup answers AccessDenied.
        if (response.StatusCode == HttpStatusCode.OK)
        {
            Assert.Equal(s_s3 + "ListAllMyBucketsResult", root.Name);
            Assert.Equal("anonymous", root.Element(s_s3 + "Owner")?.Element(s_s3 + "ID")?.Value);
        }
        else
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("Error", root.Name.LocalName);
            Assert.Equal("AccessDenied", root.Element("Code")?.Value);
        }
    }

    [Fact]
    public async Task SignedRequests_CreateBucketPutGetHeadRangeListDelete()
    {
        using var s3 = engines.CreateS3Client();
        var bucket = engines.NewBucketName("signed");
        var key = "blobs/sha256/a b+c";
        var content = DeterministicBytes(100_000, seed: 7);

        Assert.Equal(HttpStatusCode.OK, (await s3.CreateBucketAsync(bucket)).Status);

        var put = await s3.PutObjectAsync(bucket, key, content, [new("Content-Type", "application/octet-stream")]);
        Assert.Equal(HttpStatusCode.OK, put.Status);
        Assert.Equal($"\"{Convert.ToHexStringLower(MD5.HashData(content))}\"", put.Header("ETag"));

        var get = await s3.GetObjectAsync(bucket, key);
        Assert.Equal(HttpStatusCode.OK, get.Status);
        Assert.Equal(content, get.Body);

        var head = await s3.HeadObjectAsync(bucket, key);
        Assert.Equal(HttpStatusCode.OK, head.Status);
        Assert.Equal("100000", head.Header("Content-Length"));
        Assert.Empty(head.Body);

        var range = await s3.GetObjectAsync(bucket, key, "bytes=10-19");
        Assert.Equal(HttpStatusCode.PartialContent, range.Status);
        Assert.Equal("bytes 10-19/100000", range.Header("Content-Range"));
        Assert.Equal(content[10..20], range.Body);

        var suffix = await s3.GetObjectAsync(bucket, key, "bytes=-5");
        Assert.Equal(HttpStatusCode.PartialContent, suffix.Status);
        Assert.Equal(content[^5..], suffix.Body);

        Assert.Equal([key], await s3.ListKeysAsync(bucket, "blobs/"));
        Assert.Empty(await s3.ListKeysAsync(bucket, "manifests/"));

        Assert.Equal(HttpStatusCode.NoContent, (await s3.DeleteObjectAsync(bucket, key)).Status);
        var gone = await s3.GetObjectAsync(bucket, key);
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
        Assert.Equal("NoSuchKey", gone.ErrorCode);
        Assert.Equal(HttpStatusCode.NotFound, (await s3.HeadObjectAsync(bucket, key)).Status);

        Assert.Equal(HttpStatusCode.NoContent, (await s3.DeleteBucketAsync(bucket)).Status);
    }

    [Fact]
    public async Task WrongSecret_IsRejected()
    {
        using var s3 = new S3TestClient(engines.Rgw.Endpoint, engines.Rgw.AccessKey, engines.Rgw.SecretKey + "x", CephRgw.Region);

        var response = await s3.CreateBucketAsync(engines.NewBucketName("wrong-secret"));

        Assert.Equal(HttpStatusCode.Forbidden, response.Status);
        Assert.Equal("SignatureDoesNotMatch", response.ErrorCode);
    }

    [Fact]
    public async Task PutIfNoneMatchStar_ExistingKey_PreconditionFailedAndFirstBodyKept()
    {
        using var s3 = engines.CreateS3Client();
        var bucket = engines.NewBucketName("if-none-match");
        Assert.Equal(HttpStatusCode.OK, (await s3.CreateBucketAsync(bucket)).Status);
        var first = DeterministicBytes(4096, seed: 1);
        var second = DeterministicBytes(4096, seed: 2);

        var created = await s3.PutObjectAsync(bucket, "k", first, [new("If-None-Match", "*")]);
        var refused = await s3.PutObjectAsync(bucket, "k", second, [new("If-None-Match", "*")]);

        Assert.Equal(HttpStatusCode.OK, created.Status);
        Assert.Equal(HttpStatusCode.PreconditionFailed, refused.Status);
        Assert.Equal("PreconditionFailed", refused.ErrorCode);
        Assert.Equal(first, (await s3.GetObjectAsync(bucket, "k")).Body);
    }

    [Fact]
    public async Task StopRgw_RefusesConnections_StartRgw_ServesWhatWasStored()
    {
        using var s3 = engines.CreateS3Client();
        var bucket = engines.NewBucketName("restart");
        var content = DeterministicBytes(10_000, seed: 3);
        Assert.Equal(HttpStatusCode.OK, (await s3.CreateBucketAsync(bucket)).Status);
        Assert.Equal(HttpStatusCode.OK, (await s3.PutObjectAsync(bucket, "kept", content)).Status);
        var port = engines.Rgw.RgwPort;

        await engines.Rgw.StopRgwAsync();
        try
        {
            Assert.False(engines.Rgw.IsRgwRunning);
            Assert.Equal(2, engines.Rgw.DaemonProcessIds.Count);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var refused = await Assert.ThrowsAsync<SocketException>(() => socket.ConnectAsync(IPAddress.Loopback, port));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            await Assert.ThrowsAsync<HttpRequestException>(() => s3.GetObjectAsync(bucket, "kept"));
        }
        finally
        {
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            await engines.Rgw.StartRgwAsync();
            output.WriteLine($"radosgw restarted on existing pools in {stopwatch.Elapsed.TotalSeconds:F1} s");
        }

        Assert.True(engines.Rgw.IsRgwRunning);
        Assert.Equal(port, engines.Rgw.RgwPort);
        var get = await s3.GetObjectAsync(bucket, "kept");
        Assert.Equal(HttpStatusCode.OK, get.Status);
        Assert.Equal(content, get.Body);
    }

    private static byte[] DeterministicBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
