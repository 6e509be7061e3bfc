namespace MirrorProxy.Benchmarks.S3;

/// <summary>Where the clients go: an S3 endpoint on loopback, a user and a bucket.</summary>
internal sealed record S3Target(Uri Endpoint, string AccessKey, string SecretKey, string Region, string Bucket)
{
    public static S3Target FromEnvironment(string bucket)
    {
        static string Required(string name) =>
            Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : throw new InvalidOperationException($"{name} is not set (benchmarks/s3/run.sh sets it)");

        return new S3Target(new Uri(Required("S3_ENDPOINT")), Required("S3_ACCESS_KEY"), Required("S3_SECRET_KEY"), "us-east-1", bucket);
    }
}

/// <summary>What a PUT came to.</summary>
internal enum PutOutcome
{
    Stored,

    /// <summary>412: the key exists and the PUT was conditional.</summary>
    PreconditionFailed,

    /// <summary>Any other refusal (a body that does not match its signed hash, among others).</summary>
    Refused,
}

/// <summary>The operations measured, as one client library does them.</summary>
internal interface IBenchClient : IDisposable
{
    string Name { get; }

    /// <summary>How the library is set up, for the report.</summary>
    string Setup { get; }

    Task CreateBucketAsync(CancellationToken cancellationToken);

    /// <summary>
    /// PUTs <paramref name="length"/> bytes read from <paramref name="body"/> (not seekable, no Length: as a body that
    /// arrives from an upstream). <paramref name="sha256Hex"/> is the body's SHA-256, for the clients that can sign with it.
    /// </summary>
    Task<PutOutcome> PutAsync(string key, Stream body, long length, string sha256Hex, bool ifNoneMatch, CancellationToken cancellationToken);

    /// <summary>GETs the object from <paramref name="offset"/> to its end (a Range request when not 0), through <paramref name="sink"/>; the byte count.</summary>
    Task<long> GetAsync(string key, long offset, IBodySink sink, CancellationToken cancellationToken);
}

/// <summary>Where a GET's body goes, read by read.</summary>
internal interface IBodySink
{
    Memory<byte> Buffer { get; }

    void Consume(ReadOnlySpan<byte> data);
}

internal static class BodySinkExtensions
{
    /// <summary>Reads <paramref name="stream"/> to its end into <paramref name="sink"/>; the byte count.</summary>
    public static async Task<long> DrainAsync(this IBodySink sink, Stream stream, CancellationToken cancellationToken)
    {
        long total = 0;
        int read;
        while ((read = await stream.ReadAsync(sink.Buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            sink.Consume(sink.Buffer.Span[..read]);
            total += read;
        }

        return total;
    }
}
