using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using MirrorProxy.Oci;

namespace MirrorProxy.Storage.S3;

/// <summary>
/// Content in an S3-compatible bucket, shared by replicas: <c>{prefix}blobs/{algorithm}/{hex}</c>, with the
/// manifest media type and the private origins as object metadata (written with the bytes, in one atomic PUT).
/// A write streams to the store as it is written, signed with the digest as its payload hash, so the store itself
/// refuses bytes that do not match; it is conditional (<c>If-None-Match: *</c>), so a replica never replaces an
/// object another one stored. Reads are ranged GETs that follow the reader's position.
/// </summary>
internal sealed partial class S3ContentStore : IContentStore
{
    private const int ReadBuffer = 128 * 1024;

    private readonly S3Client _client;
    private readonly string _prefix;
    private readonly TimeSpan _silenceTimeout;
    private readonly ILogger _logger;

    public S3ContentStore(S3Client client, S3Options options, ILogger<S3ContentStore> logger)
    {
        _client = client;
        _prefix = options.KeyPrefix;
        _silenceTimeout = options.RequestTimeout;
        _logger = logger;
    }

    public S3Client Client => _client;

    internal string KeyOf(Digest digest) => string.Concat(_prefix, "blobs/", digest.Value.Replace(':', '/'));

    public async ValueTask<ContentStat> StatAsync(Digest digest, CancellationToken cancellationToken)
    {
        var (status, info) = await _client.HeadAsync(KeyOf(digest), cancellationToken).ConfigureAwait(false);
        return new ContentStat(status, info.Size);
    }

    public async ValueTask<(StorageStatus Status, IContentReader? Reader)> OpenReadAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken)
    {
        // The whole object, at once: most readers start at 0 and read to the end.
        var (status, body) = await _client.GetAsync(KeyOf(digest), 0, cancellationToken).ConfigureAwait(false);
        if (body is null)
        {
            return (status, null);
        }

        if (expectedSize is { } expected && expected != body.Info.Size)
        {
            body.Dispose();
            return (StorageStatus.Mismatch, null);
        }

        return (StorageStatus.Ok, new S3ContentReader(this, KeyOf(digest), body));
    }

    /// <summary>Not taken: the store needs an object's attributes before its first byte (<see cref="BeginCopyAsync"/>).</summary>
    public ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginWriteAsync(Digest digest, long? expectedSize, CancellationToken cancellationToken) =>
        throw new NotSupportedException("the shared store takes copies of stored objects, whose size and attributes are known");

    /// <summary>Starts a conditional PUT that streams what is written (creating the bucket first, the first time).</summary>
    public async ValueTask<(StorageStatus Status, IContentWriter? Writer)> BeginCopyAsync(Digest digest, long size, ContentAttributes attributes, CancellationToken cancellationToken)
    {
        var bucket = await _client.EnsureBucketOnceAsync(cancellationToken).ConfigureAwait(false);
        return bucket == StorageStatus.Ok ? (StorageStatus.Ok, new S3ContentWriter(this, digest, size, attributes)) : (bucket, null);
    }

    public async ValueTask<ContentAttributes> GetAttributesAsync(Digest digest, CancellationToken cancellationToken)
    {
        var (_, info) = await _client.HeadAsync(KeyOf(digest), cancellationToken).ConfigureAwait(false);
        return new ContentAttributes(string.IsNullOrEmpty(info.MediaType) ? null : info.MediaType, SplitOrigins(info.Origins));
    }

    public async ValueTask<StorageStatus> SetMediaTypeAsync(Digest digest, string mediaType, CancellationToken cancellationToken)
    {
        var key = KeyOf(digest);
        var (status, info) = await _client.HeadAsync(key, cancellationToken).ConfigureAwait(false);
        if (status != StorageStatus.Ok || info.MediaType is not null)
        {
            return status;
        }

        return await _client.SetMetadataAsync(key, mediaType, info.Origins, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<StorageStatus> SetOriginsAsync(Digest digest, IReadOnlyCollection<string> privateOrigins, CancellationToken cancellationToken)
    {
        var key = KeyOf(digest);
        var (status, info) = await _client.HeadAsync(key, cancellationToken).ConfigureAwait(false);
        if (status != StorageStatus.Ok)
        {
            return status;
        }

        var origins = JoinOrigins(privateOrigins);
        return origins == (info.Origins ?? "") ? StorageStatus.Ok : await _client.SetMetadataAsync(key, info.MediaType, origins, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<StorageStatus> DeleteAsync(Digest digest, CancellationToken cancellationToken) => _client.DeleteAsync(KeyOf(digest), cancellationToken);

    /// <summary>Damaged in the shared store: deleted (a bucket has nowhere to put it aside), so that it is fetched again.</summary>
    public async ValueTask<StorageStatus> QuarantineAsync(Digest digest, QuarantineReason reason, CancellationToken cancellationToken)
    {
        var status = await _client.DeleteAsync(KeyOf(digest), cancellationToken).ConfigureAwait(false);
        Log.Deleted(_logger, digest.Value, reason, status);
        return status;
    }

    /// <summary>
    /// Every object, always named: the listing carries each key anyway. A bucket lists its keys in order
    /// (<c>blobs/sha256/ab…</c>), which is shard order; the shards before <paramref name="fromShard"/> are skipped.
    /// </summary>
    public async IAsyncEnumerable<StoredObject> EnumerateAsync(DateTimeOffset namedSince, string? fromShard, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var root = _prefix + "blobs/";
        await foreach (var entry in _client.ListAsync(root, null, cancellationToken).ConfigureAwait(false))
        {
            var rest = entry.Key.AsSpan(root.Length);
            var slash = rest.IndexOf('/');
            if (slash > 0 && rest.Length >= slash + 3 && !ContentShards.IsBefore(rest[..slash], rest.Slice(slash + 1, 2), fromShard)
                && Digest.TryParse(string.Concat(rest[..slash], ":", rest[(slash + 1)..]), out var digest))
            {
                yield return new StoredObject(digest, entry.Size, entry.LastModified);
            }
        }
    }

    /// <summary>A bucket has no free space to tell.</summary>
    public long? FreeSpace() => null;

    /// <summary>Whether the store answers (a HEAD of the bucket; the breaker answers without dialing while it is down).</summary>
    public async ValueTask<(StorageStatus Status, string? Error)> ProbeWritableAsync(CancellationToken cancellationToken)
    {
        var status = await _client.EnsureBucketAsync(cancellationToken).ConfigureAwait(false);
        return status == StorageStatus.Ok ? (status, null) : (status, $"the shared store {_client.Endpoint} {(_client.LastFailure is { } why ? $"is unreachable: {why}" : $"answered {status}")}");
    }

    internal static IReadOnlyList<string> SplitOrigins(string? origins) =>
        string.IsNullOrEmpty(origins) ? [] : origins.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static string JoinOrigins(IReadOnlyCollection<string>? origins) => origins is null ? "" : string.Join(',', origins);

    /// <summary>
    /// Reads through one GET while the reader moves forward; a read elsewhere opens a ranged GET from there. A body
    /// that stays silent longer than the request timeout fails the read (an <see cref="IOException"/>, as a disk's would).
    /// </summary>
    private sealed class S3ContentReader(S3ContentStore store, string key, S3Body first) : IContentReader
    {
        private S3Body? _body = first;
        private long _position;
        private CancellationTokenSource? _silence;

        public long Length { get; } = first.Info.Size;

        public async ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            if (offset >= Length || buffer.Length == 0)
            {
                return 0;
            }

            if (_body is null || offset != _position)
            {
                _body?.Dispose();
                _body = null;
                var (status, body) = await store._client.GetAsync(key, offset, cancellationToken).ConfigureAwait(false);
                if (body is null)
                {
                    throw new IOException($"the shared store could not read {key} from {offset}: {status}");
                }

                _body = body;
                _position = offset;
            }

            _silence ??= new CancellationTokenSource();
            if (!_silence.TryReset())
            {
                _silence.Dispose();
                _silence = new CancellationTokenSource();
            }

            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _silence.Token);
            _silence.CancelAfter(store._silenceTimeout);
            int read;
            try
            {
                read = await _body.Content.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new IOException($"the shared store sent nothing of {key} for {store._silenceTimeout.TotalSeconds:0}s");
            }
            catch (HttpRequestException ex)
            {
                throw new IOException($"reading {key} from the shared store failed: {ex.Message}", ex);
            }

            if (read == 0)
            {
                throw new IOException($"the shared store ended {key} at {_position} of {Length} bytes");
            }

            _position += read;
            return read;
        }

        public void Dispose()
        {
            _body?.Dispose();
            _silence?.Dispose();
        }
    }

    /// <summary>
    /// A PUT whose body is fed by <see cref="WriteAsync"/> through a pipe (at most about 1 MiB held). The payload
    /// hash is the digest when it is a SHA-256, which the store verifies before it keeps anything; any other digest
    /// is checked here, and a mismatch deletes what the store kept.
    /// </summary>
    private sealed class S3ContentWriter : IContentWriter
    {
        private readonly S3ContentStore _store;
        private readonly long _size;
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 512 << 10, minimumSegmentSize: 64 << 10, useSynchronizationContext: false));
        private readonly IncrementalHash? _hash;
        private readonly CancellationTokenSource _abort = new();
        private readonly Task<StorageStatus> _put;
        private long _written;
        private bool _done;

        public S3ContentWriter(S3ContentStore store, Digest digest, long size, ContentAttributes attributes)
        {
            _store = store;
            Digest = digest;
            _size = size;
            _hash = digest.IsSha512 ? digest.CreateHash() : null;
            var content = new StreamContent(_pipe.Reader.AsStream(), ReadBuffer);
            content.Headers.ContentLength = size;
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            var payloadHash = _hash is null ? digest.Encoded.ToString() : S3Signer.UnsignedPayload;
            _put = store._client.PutAsync(store.KeyOf(digest), content, payloadHash, attributes.MediaType, JoinOrigins(attributes.PrivateOrigins), ifNoneMatch: true, _abort.Token).AsTask();
        }

        public Digest Digest { get; }

        public long Written => Volatile.Read(ref _written);

        public async ValueTask<StorageStatus> WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (Written + data.Length > _size)
            {
                return StorageStatus.Mismatch;
            }

            _hash?.AppendData(data.Span);
            var flushed = await _pipe.Writer.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _written, Written + data.Length);
            if (flushed.IsCompleted)
            {
                // The PUT stopped reading: it ended early, and its status says why.
                var status = await _put.ConfigureAwait(false);
                return status == StorageStatus.Ok ? StorageStatus.IoError : status;
            }

            return StorageStatus.Ok;
        }

        public ValueTask<int> ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
            throw new NotSupportedException("an object written to the shared store is read back from it once committed");

        /// <summary>Only a SHA-512 digest is hashed here; the store verifies a SHA-256 one itself.</summary>
        public int GetCurrentHash(Span<byte> destination) => _hash?.GetCurrentHash(destination) ?? 0;

        /// <summary>Ends the body and waits for the store's answer; the attributes were sent with the request.</summary>
        public async ValueTask<StorageStatus> CommitAsync(string? mediaType, IReadOnlyCollection<string>? privateOrigins, CancellationToken cancellationToken)
        {
            if (Written != _size)
            {
                return StorageStatus.Mismatch;
            }

            await _pipe.Writer.CompleteAsync().ConfigureAwait(false);
            StorageStatus status;
            using (cancellationToken.Register(static abort => ((CancellationTokenSource)abort!).Cancel(), _abort))
            {
                try
                {
                    status = await _put.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_abort.IsCancellationRequested)
                {
                    status = StorageStatus.Unavailable;
                }
            }

            if (_hash is not null && status == StorageStatus.Ok)
            {
                Span<byte> hash = stackalloc byte[64];
                var length = _hash.GetHashAndReset(hash);
                if (!Digest.MatchesHash(hash[..length]))
                {
                    await _store._client.DeleteAsync(_store.KeyOf(Digest), CancellationToken.None).ConfigureAwait(false);
                    status = StorageStatus.Mismatch;
                }
            }

            _done = true;
            return status;
        }

        public async ValueTask AbortAsync()
        {
            if (_done)
            {
                return;
            }

            _done = true;
            _abort.Cancel();
            await _pipe.Writer.CompleteAsync(new OperationCanceledException("aborted")).ConfigureAwait(false);
            try
            {
                await _put.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Aborted, as asked: the store keeps nothing of a PUT that did not send its whole length.
            }
        }

        public async ValueTask DisposeAsync()
        {
            await AbortAsync().ConfigureAwait(false);
            _abort.Dispose();
            _hash?.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2310, LogLevel.Error, "Object {Digest} in the shared store is damaged ({Reason}) and was deleted ({Status}); it will be fetched again when needed")]
        public static partial void Deleted(ILogger logger, string digest, QuarantineReason reason, StorageStatus status);
    }
}
