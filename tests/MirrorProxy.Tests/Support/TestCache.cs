using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Tests.Support;

/// <summary>A real cache (files, FASTER index) in a temporary directory, reopened as the mirror reopens it.</summary>
internal sealed class TestCache : IDisposable
{
    private readonly TempDirectory _directory = new();

    private readonly SharedTier? _shared;

    public TestCache(TimeProvider? time = null, long memory = 1 << 20, SharedTier? shared = null)
    {
        _shared = shared;
        Time = time ?? TimeProvider.System;
        Options = new CacheOptions { Path = _directory.Path, MemorySize = new ByteSize(memory) };
        Cache = Open();
    }

    public TimeProvider Time { get; }

    public CacheOptions Options { get; }

    public MirrorCache Cache { get; private set; }

    public string Root => _directory.Path;

    public string BlobPath(Digest digest) => _directory.Combine("blobs", digest.Value[..6], digest.Encoded[..2].ToString(), digest.Encoded.ToString());

    /// <summary>Stops (cleanly or as a crash would) and opens the cache again.</summary>
    public async Task ReopenAsync(bool clean)
    {
        if (clean)
        {
            Cache.SaveTotals();
            await Cache.Index.CloseCleanlyAsync(CancellationToken.None);
        }

        Cache.Dispose();
        Cache = Open();
    }

    /// <summary>Stores <paramref name="content"/> as a blob through the write path the downloads use.</summary>
    /// <summary>Content from an anonymous upstream.</summary>
    public static ContentOrigin Public { get; } = new("public.test", IsPublic: true);

    public async Task<Digest> PutBlobAsync(byte[] content, ContentOrigin? origin = null)
    {
        var digest = Digest.ComputeSha256(content);
        var (status, writer) = await Cache.BeginWriteAsync(digest, content.Length, CancellationToken.None);
        Assert.Equal(StorageStatus.Ok, status);
        await using (writer!)
        {
            Assert.Equal(StorageStatus.Ok, await writer!.WriteAsync(content, CancellationToken.None));
            Assert.Equal(StorageStatus.Ok, await Cache.CommitAsync(writer, null, origin ?? Public, CancellationToken.None));
        }

        return digest;
    }

    private MirrorCache Open() => FileCache.Open(Options, TestMetrics.Create(), Time, NullLoggerFactory.Instance, _shared);

    public void Dispose()
    {
        Cache.Dispose();
        _directory.Dispose();
    }
}
