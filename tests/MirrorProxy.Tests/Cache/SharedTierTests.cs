using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cache;

/// <summary>
/// The cache over a store shared by replicas, with a second real file store standing in for the bucket (the S3
/// store itself is exercised against Ceph RGW in the integration tests).
/// </summary>
public sealed class SharedTierTests : IDisposable
{
    private readonly TempDirectory _bucket = new();
    private readonly FileContentStore _sharedStore;
    private readonly SharedTier _tier;
    private bool _reachable = true;

    public SharedTierTests()
    {
        var layout = new CacheLayout(_bucket.Path);
        layout.Initialize();
        _sharedStore = new FileContentStore(layout, TimeProvider.System, NullLogger<FileContentStore>.Instance);
        _tier = new SharedTier(_sharedStore, new FileMetadataStore(_sharedStore), () => _reachable, maxFillSize: 1 << 20, concurrentUploads: 2, TestUpstreams.Background,
            NullLogger<SharedTier>.Instance);
    }

    public void Dispose() => _bucket.Dispose();

    [Fact]
    public async Task ContentCommittedOnOneNode_IsCopiedToTheSharedStore_WithItsOrigins()
    {
        using var node = new TestCache(shared: _tier);
        var content = RandomBytes(50_000);
        var digest = await node.PutBlobAsync(content, new ContentOrigin("harbor.test", IsPublic: false));

        Assert.Equal(StorageStatus.Ok, await _tier.UploadOf(digest));

        var stat = await _sharedStore.StatAsync(digest, CancellationToken.None);
        Assert.Equal((StorageStatus.Ok, 50_000L), (stat.Status, stat.Size));
        Assert.Equal(["harbor.test"], (await _sharedStore.GetAttributesAsync(digest, CancellationToken.None)).PrivateOrigins);
    }

    [Fact]
    public async Task ContentAnotherNodeShared_IsFoundRemote_ReadWhole_AndThenLocal()
    {
        using var first = new TestCache(shared: _tier);
        using var second = new TestCache(shared: _tier);
        var content = RandomBytes(300_000);
        var digest = await first.PutBlobAsync(content);
        await _tier.UploadOf(digest);

        var entry = (await second.Cache.LookupAsync(digest, CancellationToken.None))!.Value;
        Assert.True(entry.Remote);
        entry = await second.Cache.ResolveAsync(digest, entry, CancellationToken.None);
        Assert.Equal(ContentKind.Blob, entry.Kind);

        var (status, reader) = await second.Cache.OpenAsync(digest, entry, CancellationToken.None);
        Assert.Equal(CachedContentStatus.Ok, status);
        Assert.Equal(content, await ReadAllAsync(reader!));

        // Read from the first byte to the last: the second node holds its own verified copy now.
        var local = (await second.Cache.LookupAsync(digest, CancellationToken.None))!.Value;
        Assert.False(local.Remote);
        Assert.Equal(ContentKind.Blob, local.Kind);
        Assert.True(File.Exists(second.BlobPath(digest)));
        Assert.Equal(1, second.Cache.ObjectCount);
    }

    [Fact]
    public async Task ARangeReadOfASharedObject_IsServed_AndLeavesNoLocalCopy()
    {
        using var first = new TestCache(shared: _tier);
        using var second = new TestCache(shared: _tier);
        var content = RandomBytes(200_000);
        var digest = await first.PutBlobAsync(content);
        await _tier.UploadOf(digest);

        var entry = await second.Cache.ResolveAsync(digest, (await second.Cache.LookupAsync(digest, CancellationToken.None))!.Value, CancellationToken.None);
        var (_, reader) = await second.Cache.OpenAsync(digest, entry, CancellationToken.None);
        using (reader)
        {
            var buffer = new byte[1000];
            var read = await reader!.ReadAsync(150_000, buffer, CancellationToken.None);
            Assert.Equal(content.AsSpan(150_000, read).ToArray(), buffer[..read]);
        }

        Assert.False(File.Exists(second.BlobPath(digest)));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(second.Root, "tmp")));
    }

    [Fact]
    public async Task ADamagedSharedCopy_IsNotKept_AndIsDeletedFromTheSharedStore()
    {
        using var first = new TestCache(shared: _tier);
        using var second = new TestCache(shared: _tier);
        var content = RandomBytes(100_000);
        var digest = await first.PutBlobAsync(content);
        await _tier.UploadOf(digest);
        var sharedPath = Path.Combine(_bucket.Path, "blobs", "sha256", digest.Encoded[..2].ToString(), digest.Encoded.ToString());
        var bytes = await File.ReadAllBytesAsync(sharedPath);
        bytes[500] ^= 0xFF;
        await File.WriteAllBytesAsync(sharedPath, bytes);

        var entry = await second.Cache.ResolveAsync(digest, (await second.Cache.LookupAsync(digest, CancellationToken.None))!.Value, CancellationToken.None);
        var (_, reader) = await second.Cache.OpenAsync(digest, entry, CancellationToken.None);
        await ReadAllAsync(reader!);

        Assert.False(File.Exists(second.BlobPath(digest)));
        Assert.False((await _sharedStore.StatAsync(digest, CancellationToken.None)).Exists);
    }

    [Fact]
    public async Task EvictionOnANode_FreesItsCopy_AndLeavesTheSharedOne()
    {
        using var node = new TestCache(shared: _tier);
        var digest = await node.PutBlobAsync(RandomBytes(10_000));
        await _tier.UploadOf(digest);

        Assert.Equal(10_000, await node.Cache.EvictAsync(digest, 10_000, CancellationToken.None));

        Assert.True((await _sharedStore.StatAsync(digest, CancellationToken.None)).Exists);
        Assert.True((await node.Cache.LookupAsync(digest, CancellationToken.None))!.Value.Remote);
    }

    [Fact]
    public async Task Documents_AreWrittenToBoth_ReadFromTheSharedStoreFirst_AndLocallyWhenItIsDown()
    {
        using var first = new TestCache(shared: _tier);
        using var second = new TestCache(shared: _tier);
        await first.Cache.Metadata.WriteAsync("pins/a.json", "{\"from\":\"first\"}"u8.ToArray(), CancellationToken.None);

        Assert.Equal("{\"from\":\"first\"}"u8.ToArray(), await second.Cache.Metadata.ReadAsync("pins/a.json", 1024, CancellationToken.None));

        _reachable = false;
        Assert.Null(await second.Cache.Metadata.ReadAsync("pins/a.json", 1024, CancellationToken.None));
        Assert.NotNull(await first.Cache.Metadata.ReadAsync("pins/a.json", 1024, CancellationToken.None));
    }

    [Fact]
    public async Task NodeLocalState_IsNeverShared()
    {
        using var node = new TestCache(shared: _tier);
        await node.Cache.Metadata.WriteAsync(MetadataKeys.LocalPrefix + "scrub-completed", "1"u8.ToArray(), CancellationToken.None);

        Assert.False(File.Exists(Path.Combine(_bucket.Path, "state", "local", "scrub-completed")));
        Assert.True(File.Exists(Path.Combine(node.Root, "state", "local", "scrub-completed")));
    }

    private static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    private static async Task<byte[]> ReadAllAsync(IContentReader reader)
    {
        using (reader)
        {
            var content = new byte[reader.Length];
            var offset = 0;
            while (offset < content.Length)
            {
                var read = await reader.ReadAsync(offset, content.AsMemory(offset, Math.Min(64 * 1024, content.Length - offset)), CancellationToken.None);
                if (read == 0)
                {
                    break;
                }

                offset += read;
            }

            return content;
        }
    }
}
