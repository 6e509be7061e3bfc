#if CLIENT_AWS
using System.Net;
using Amazon.Runtime;
using Amazon.Runtime.Internal;
using Amazon.S3;
using Amazon.S3.Model;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>
/// AWSSDK.S3 against an S3-compatible store: ServiceURL on http, path-style, and checksums only where an operation
/// requires them (the SDK's default since 3.7.410 adds CRC32 trailers in aws-chunked bodies). Two ways to send a PUT:
/// <list type="bullet">
/// <item><c>aws</c>: signed with the body's SHA-256 given by the caller, not chunked, as the mirror's own client does (the
/// store verifies the bytes against the digest), without the SDK's MD5 of the body. The SDK has no public way to do
/// this: its signer drops an <c>x-amz-content-sha256</c> header set on the request and, for a stream that cannot seek,
/// switches to chunked signing whatever <c>UseChunkEncoding</c> says; a pipeline handler placed before the signer
/// (<see cref="PrecomputedHashClient"/>) sets the request's <c>PrecomputedContentSha256</c> instead.</item>
/// <item><c>aws-chunked</c>: the SDK's defaults for a PUT on http: aws-chunked, each 80 KiB chunk signed
/// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), which proves the bytes were not altered in flight but not that they are the
/// expected digest, plus an MD5 of the body compared with the ETag.</item>
/// </list>
/// </summary>
internal sealed class AwsClient : IBenchClient
{
    private readonly AmazonS3Client _client;
    private readonly string _bucket;
    private readonly bool _chunked;

    public AwsClient(S3Target target, bool chunked)
    {
        _bucket = target.Bucket;
        _chunked = chunked;
        var config = new AmazonS3Config
        {
            ServiceURL = target.Endpoint.ToString(),
            ForcePathStyle = true,
            UseHttp = target.Endpoint.Scheme == "http",
            AuthenticationRegion = target.Region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        var credentials = new BasicAWSCredentials(target.AccessKey, target.SecretKey);
        _client = chunked ? new AmazonS3Client(credentials, config) : new PrecomputedHashClient(credentials, config);
    }

    public string Name => _chunked ? "aws-chunked" : "aws";

    public string Setup => _chunked
        ? "AmazonS3Config { ServiceURL, ForcePathStyle, UseHttp, RequestChecksumCalculation = ResponseChecksumValidation = WHEN_REQUIRED }; PUT with the SDK's defaults (UseChunkEncoding: each chunk signed)"
        : "the same config; PUT signed with the body's SHA-256 (a pipeline handler before the signer sets PrecomputedContentSha256, UseChunkEncoding = false), DisableDefaultChecksumValidation = true";

    public async Task CreateBucketAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _client.PutBucketAsync(new PutBucketRequest { BucketName = _bucket }, cancellationToken).ConfigureAwait(false);
        }
        catch (AmazonS3Exception ex) when (ex.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }
    }

    public async Task<PutOutcome> PutAsync(string key, Stream body, long length, string sha256Hex, bool ifNoneMatch, CancellationToken cancellationToken)
    {
        var request = new PutObjectRequest
        {
            BucketName = _bucket,
            Key = key,
            InputStream = body,
            AutoCloseStream = false,
            AutoResetStreamPosition = false,
            ContentType = "application/octet-stream",
        };
        request.Headers.ContentLength = length;
        if (!_chunked)
        {
            request.UseChunkEncoding = false;
            request.DisableDefaultChecksumValidation = true;
            request.Headers[PrecomputedHashClient.Header] = sha256Hex;
        }

        if (ifNoneMatch)
        {
            request.IfNoneMatch = "*";
        }

        try
        {
            await _client.PutObjectAsync(request, cancellationToken).ConfigureAwait(false);
            return PutOutcome.Stored;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.PreconditionFailed)
        {
            return PutOutcome.PreconditionFailed;
        }
        catch (AmazonS3Exception)
        {
            return PutOutcome.Refused;
        }
    }

    public async Task<long> GetAsync(string key, long offset, IBodySink sink, CancellationToken cancellationToken)
    {
        var request = new GetObjectRequest { BucketName = _bucket, Key = key };
        if (offset > 0)
        {
            request.ByteRange = new ByteRange($"bytes={offset}-");
        }

        using var response = await _client.GetObjectAsync(request, cancellationToken).ConfigureAwait(false);
        return await sink.DrainAsync(response.ResponseStream, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>
    /// An <see cref="AmazonS3Client"/> that signs a PUT with the SHA-256 its caller gives in <see cref="Header"/> (removed
    /// before sending), unchunked, so that the store refuses a body that does not hash to it.
    /// </summary>
    private sealed class PrecomputedHashClient(AWSCredentials credentials, AmazonS3Config config) : AmazonS3Client(credentials, config)
    {
        public const string Header = "x-mirrorproxy-payload-sha256";

        protected override void CustomizeRuntimePipeline(RuntimePipeline pipeline)
        {
            base.CustomizeRuntimePipeline(pipeline);
            pipeline.AddHandlerBefore<Signer>(new PrecomputedHashHandler());
        }
    }

    private sealed class PrecomputedHashHandler : PipelineHandler
    {
        public override void InvokeSync(IExecutionContext executionContext)
        {
            Apply(executionContext.RequestContext.Request);
            base.InvokeSync(executionContext);
        }

        public override Task<T> InvokeAsync<T>(IExecutionContext executionContext)
        {
            Apply(executionContext.RequestContext.Request);
            return base.InvokeAsync<T>(executionContext);
        }

        private static void Apply(IRequest request)
        {
            if (request.Headers.Remove(PrecomputedHashClient.Header, out var hash))
            {
                request.UseChunkEncoding = false;
                request.PrecomputedContentSha256 = hash;
            }
        }
    }
}
#endif
