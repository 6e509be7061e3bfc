#if CLIENT_MINIO
using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>
/// Minio's .NET client as it comes (its only choices for a PUT are the stream and its size). On http it signs the
/// payload by hashing the body it has read into memory: the whole object below 5 MiB, each part of a multipart upload
/// above. It has no conditional PUT: a header given through WithHeaders that it does not know goes out as user metadata
/// (x-amz-meta-if-none-match), so the store never sees the condition. A GET is a HEAD (StatObject) and then the GET; 7.0.0
/// treats the 206 answer to a ranged GET as an error (PartialContentException, a regression fixed after that release).
/// </summary>
internal sealed class MinioSdkClient : IBenchClient
{
    private readonly IMinioClient _client;
    private readonly string _bucket;

    public MinioSdkClient(S3Target target)
    {
        _bucket = target.Bucket;
        _client = new MinioClient()
            .WithEndpoint(target.Endpoint.Host, target.Endpoint.Port)
            .WithCredentials(target.AccessKey, target.SecretKey)
            .WithRegion(target.Region)
            .WithSSL(target.Endpoint.Scheme == "https")
            .Build();
    }

    public string Name => "minio";

    public string Setup => "new MinioClient().WithEndpoint(host, port).WithCredentials(..).WithRegion(..).WithSSL(false); PutObjectArgs.WithStreamData(stream).WithObjectSize(n), If-None-Match through WithHeaders";

    public async Task CreateBucketAsync(CancellationToken cancellationToken)
    {
        if (!await _client.BucketExistsAsync(new BucketExistsArgs().WithBucket(_bucket), cancellationToken).ConfigureAwait(false))
        {
            await _client.MakeBucketAsync(new MakeBucketArgs().WithBucket(_bucket), cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<PutOutcome> PutAsync(string key, Stream body, long length, string sha256Hex, bool ifNoneMatch, CancellationToken cancellationToken)
    {
        var args = new PutObjectArgs().WithBucket(_bucket).WithObject(key).WithStreamData(body).WithObjectSize(length).WithContentType("application/octet-stream");
        if (ifNoneMatch)
        {
            args = args.WithHeaders(new Dictionary<string, string>(StringComparer.Ordinal) { ["If-None-Match"] = "*" });
        }

        try
        {
            await _client.PutObjectAsync(args, cancellationToken).ConfigureAwait(false);
            return PutOutcome.Stored;
        }
        catch (PreconditionFailedException)
        {
            return PutOutcome.PreconditionFailed;
        }
        catch (MinioException ex) when (ex.ServerResponse?.StatusCode == System.Net.HttpStatusCode.PreconditionFailed)
        {
            return PutOutcome.PreconditionFailed;
        }
        catch (MinioException)
        {
            return PutOutcome.Refused;
        }
    }

    public async Task<long> GetAsync(string key, long offset, IBodySink sink, CancellationToken cancellationToken)
    {
        long total = 0;
        var args = new GetObjectArgs().WithBucket(_bucket).WithObject(key)
            .WithCallbackStream(async (stream, token) => total = await sink.DrainAsync(stream, token).ConfigureAwait(false));
        if (offset > 0)
        {
            args = args.WithOffsetAndLength(offset, 0);
        }

        await _client.GetObjectAsync(args, cancellationToken).ConfigureAwait(false);
        return total;
    }

    public void Dispose() => _client.Dispose();
}
#endif
