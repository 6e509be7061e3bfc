using System.Net.Http.Headers;
using System.Runtime.CompilerServices;

namespace MirrorProxy.Storage.S3;

/// <summary>The mirror's documents (tags, pin sets, listings, state) as small objects under <c>{prefix}meta/</c>.</summary>
internal sealed class S3MetadataStore : IMetadataStore
{
    private readonly S3Client _client;
    private readonly string _root;

    public S3MetadataStore(S3Client client, S3Options options)
    {
        _client = client;
        _root = options.KeyPrefix + "meta/";
    }

    public async ValueTask<byte[]?> ReadAsync(string key, int maxBytes, CancellationToken cancellationToken)
    {
        var (status, body) = await _client.GetAsync(_root + key, 0, cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            return null;
        }

        using (body)
        {
            if (body.Info.Size > maxBytes)
            {
                return null;
            }

            var content = new byte[body.Info.Size];
            try
            {
                await body.Content.ReadExactlyAsync(content, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                return null;
            }

            return content;
        }
    }

    public async ValueTask<StorageStatus> WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        if (await _client.EnsureBucketOnceAsync(cancellationToken).ConfigureAwait(false) is not StorageStatus.Ok and var bucket)
        {
            return bucket;
        }

        var body = new ReadOnlyMemoryContent(content);
        body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return await _client.PutAsync(_root + key, body, S3Client.PayloadHash(content.Span), null, null, ifNoneMatch: false, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<StorageStatus> DeleteAsync(string key, CancellationToken cancellationToken) => _client.DeleteAsync(_root + key, cancellationToken);

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var under = _root + prefix.TrimEnd('/') + "/";
        await foreach (var entry in _client.ListAsync(under, "/", cancellationToken).ConfigureAwait(false))
        {
            if (entry.Size >= 0)
            {
                yield return entry.Key[under.Length..];
            }
        }
    }

    public async IAsyncEnumerable<string> EnumerateAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var under = _root + prefix.TrimEnd('/') + "/";
        await foreach (var entry in _client.ListAsync(under, null, cancellationToken).ConfigureAwait(false))
        {
            yield return entry.Key[_root.Length..];
        }
    }
}
