#if CLIENT_OWN
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Storage;
using MirrorProxy.Storage.S3;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>
/// The mirror's own client (<see cref="S3Client"/>: SigV4 over <see cref="HttpClient"/>), as S3ContentStore drives it: the
/// body streamed from a <see cref="StreamContent"/> of known length, signed with its SHA-256 as the payload hash.
/// </summary>
internal sealed class OwnClient : IBenchClient
{
    private readonly S3Client _client;

    public OwnClient(S3Target target)
    {
        var options = new S3Options
        {
            Endpoint = target.Endpoint.ToString(),
            Bucket = target.Bucket,
            Region = target.Region,
            AccessKey = target.AccessKey,
            SecretKey = target.SecretKey,
            ForcePathStyle = true,
        };
        _client = new S3Client(options, new S3Credentials(target.AccessKey, target.SecretKey), TimeProvider.System, NullLogger.Instance);
    }

    public string Name => "own";

    public string Setup => "S3Client as S3ContentStore uses it: x-amz-content-sha256 = the body's SHA-256 (the digest), StreamContent with Content-Length, ranged GETs streamed";

    public async Task CreateBucketAsync(CancellationToken cancellationToken)
    {
        var status = await _client.EnsureBucketAsync(cancellationToken).ConfigureAwait(false);
        if (status != StorageStatus.Ok)
        {
            throw new InvalidOperationException($"bucket: {status}");
        }
    }

    public async Task<PutOutcome> PutAsync(string key, Stream body, long length, string sha256Hex, bool ifNoneMatch, CancellationToken cancellationToken)
    {
        var content = new StreamContent(body, 128 * 1024);
        content.Headers.ContentLength = length;
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        var status = await _client.PutAsync(key, content, sha256Hex, null, null, ifNoneMatch, cancellationToken).ConfigureAwait(false);
        return status switch
        {
            StorageStatus.Ok => PutOutcome.Stored,
            StorageStatus.AlreadyExists => PutOutcome.PreconditionFailed,
            _ => PutOutcome.Refused,
        };
    }

    public async Task<long> GetAsync(string key, long offset, IBodySink sink, CancellationToken cancellationToken)
    {
        var (status, body) = await _client.GetAsync(key, offset, cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            throw new InvalidOperationException($"GET {key}: {status}");
        }

        using (body)
        {
            return await sink.DrainAsync(body.Content, cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose() => _client.Dispose();
}
#endif
