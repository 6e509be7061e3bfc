using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Storage;

public sealed class FileContentStoreTests : IDisposable
{
    private static readonly byte[] Content = "some layer bytes"u8.ToArray();
    private readonly TempDirectory _temp = new();
    private readonly CacheLayout _layout;
    private readonly FileContentStore _store;

    public FileContentStoreTests()
    {
        _layout = new CacheLayout(_temp.Path);
        _layout.Initialize();
        _store = new FileContentStore(_layout, TimeProvider.System, NullLogger<FileContentStore>.Instance);
    }

    [Fact]
    public async Task Commit_VerifiedContent_IsPublishedAtItsAddressAndReadableWhole()
    {
        var digest = Digest.ComputeSha256(Content);

        Assert.Equal(StorageStatus.Ok, await WriteAsync(digest, Content, Content.Length));

        Assert.Equal(new ContentStat(StorageStatus.Ok, Content.Length), await _store.StatAsync(digest, CancellationToken.None));
        var (status, reader) = await _store.OpenReadAsync(digest, Content.Length, CancellationToken.None);
        Assert.Equal(StorageStatus.Ok, status);
        using (reader)
        {
            var buffer = new byte[64];
            var read = await reader!.ReadAsync(0, buffer, CancellationToken.None);
            Assert.Equal(Content, buffer[..read]);
        }

        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
    }

    [Fact]
    public async Task Commit_BytesOfAnotherDigest_IsAMismatchAndNothingIsPublished()
    {
        var digest = Digest.ComputeSha256("other"u8);

        Assert.Equal(StorageStatus.Mismatch, await WriteAsync(digest, Content, null));

        Assert.False((await _store.StatAsync(digest, CancellationToken.None)).Exists);
        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
    }

    [Fact]
    public async Task Commit_FewerBytesThanExpected_IsAMismatch()
    {
        var digest = Digest.ComputeSha256(Content);

        Assert.Equal(StorageStatus.Mismatch, await WriteAsync(digest, Content, Content.Length + 1));
    }

    [Fact]
    public async Task Commit_ContentAlreadyStored_SaysSoAndKeepsOneCopy()
    {
        var digest = Digest.ComputeSha256(Content);
        await WriteAsync(digest, Content, null);

        Assert.Equal(StorageStatus.AlreadyExists, await WriteAsync(digest, Content, null));
        Assert.Single(await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None)));
    }

    [Fact]
    public async Task OpenRead_FileOfAnotherSize_IsAMismatchNotAShortRead()
    {
        var digest = Digest.ComputeSha256(Content);
        await WriteAsync(digest, Content, null);
        await File.WriteAllBytesAsync(_layout.BlobPath(digest), Content[..5]);

        var (status, reader) = await _store.OpenReadAsync(digest, Content.Length, CancellationToken.None);

        Assert.Equal(StorageStatus.Mismatch, status);
        Assert.Null(reader);
    }

    [Fact]
    public async Task Writer_ReadersFollowTheGrowingObject_BeforeAndAfterTheCommit()
    {
        var digest = Digest.ComputeSha256(Content);
        var (_, writer) = await _store.BeginWriteAsync(digest, Content.Length, CancellationToken.None);
        await using (writer!)
        {
            await writer!.WriteAsync(Content.AsMemory(0, 4), CancellationToken.None);
            var buffer = new byte[16];
            Assert.Equal(4, await writer.ReadAsync(0, buffer, CancellationToken.None));

            await writer.WriteAsync(Content.AsMemory(4), CancellationToken.None);
            Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, null, CancellationToken.None));
            Assert.Equal(Content.Length - 4, await writer.ReadAsync(4, buffer, CancellationToken.None));
        }
    }

    [Fact]
    public async Task BulkWrite_ManyWindowsWrittenBehind_CommitsTheSameBytes_AndTheHashSoFarIsThatOfTheBytesWritten()
    {
        // 20 MiB in uneven pieces: several write-behind windows, and a last write that is not a whole window.
        var content = new byte[20 * 1024 * 1024 + 12345];
        new Random(7).NextBytes(content);
        var digest = Digest.ComputeSha256(content);
        var (status, writer) = await _store.BeginBulkWriteAsync(digest, content.Length, CancellationToken.None);
        Assert.Equal(StorageStatus.Ok, status);
        await using (writer!)
        {
            for (var offset = 0; offset < content.Length; offset += 300_001)
            {
                Assert.Equal(StorageStatus.Ok, await writer!.WriteAsync(content.AsMemory(offset, Math.Min(300_001, content.Length - offset)), CancellationToken.None));
            }

            var hash = new byte[64];
            Assert.Equal(32, writer!.GetCurrentHash(hash));
            Assert.True(digest.MatchesHash(hash.AsSpan(0, 32)));
            Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, null, CancellationToken.None));
        }

        Assert.Equal(content, await File.ReadAllBytesAsync(_layout.BlobPath(digest)));
        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
    }

    [Fact]
    public async Task BulkWrite_BytesOfAnotherDigest_IsAMismatchAndNothingIsPublished()
    {
        var content = new byte[9 * 1024 * 1024];
        var digest = Digest.ComputeSha256("other"u8);
        var (_, writer) = await _store.BeginBulkWriteAsync(digest, content.Length, CancellationToken.None);
        await using (writer!)
        {
            Assert.Equal(StorageStatus.Ok, await writer!.WriteAsync(content, CancellationToken.None));
            Assert.Equal(StorageStatus.Mismatch, await writer.CommitAsync(null, null, CancellationToken.None));
        }

        Assert.False((await _store.StatAsync(digest, CancellationToken.None)).Exists);
        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
    }

    [Fact]
    public async Task Abort_DiscardsTheWrite()
    {
        var digest = Digest.ComputeSha256(Content);
        var (_, writer) = await _store.BeginWriteAsync(digest, null, CancellationToken.None);
        await writer!.WriteAsync(Content, CancellationToken.None);

        await writer.DisposeAsync();

        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
        Assert.False((await _store.StatAsync(digest, CancellationToken.None)).Exists);
    }

    [Fact]
    public async Task Commit_Manifest_RecordsItsMediaTypeBesideIt_AndEnumerationSkipsTheTypeFile()
    {
        var digest = Digest.ComputeSha256(Content);
        await WriteAsync(digest, Content, null, MediaTypes.OciManifest);

        var attributes = await _store.GetAttributesAsync(digest, CancellationToken.None);
        Assert.Equal(MediaTypes.OciManifest, attributes.MediaType);
        Assert.Empty(attributes.PrivateOrigins);
        var listed = Assert.Single(await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None)));
        Assert.Equal(digest, listed.Digest);
        Assert.Equal(Content.Length, listed.Size);
    }

    [Fact]
    public async Task Commit_FromPrivateUpstreams_RecordsThemBeforeTheBytesAppear_AndEnumerationSkipsTheRecord()
    {
        var digest = Digest.ComputeSha256(Content);
        var (_, writer) = await _store.BeginWriteAsync(digest, null, CancellationToken.None);
        await using (writer!)
        {
            await writer!.WriteAsync(Content, CancellationToken.None);
            Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, ["harbor.internal"], CancellationToken.None));
        }

        Assert.Equal(["harbor.internal"], (await _store.GetAttributesAsync(digest, CancellationToken.None)).PrivateOrigins);
        Assert.Equal(StorageStatus.Ok, await _store.SetOriginsAsync(digest, ["harbor.internal", "other.internal"], CancellationToken.None));
        Assert.Equal(["harbor.internal", "other.internal"], (await _store.GetAttributesAsync(digest, CancellationToken.None)).PrivateOrigins);
        Assert.Equal(StorageStatus.Ok, await _store.SetOriginsAsync(digest, [], CancellationToken.None));
        Assert.Empty((await _store.GetAttributesAsync(digest, CancellationToken.None)).PrivateOrigins);
        Assert.Single(await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None)));
    }

    [Fact]
    public async Task Quarantine_MovesTheObjectAsideAndItIsGone()
    {
        var digest = Digest.ComputeSha256(Content);
        await WriteAsync(digest, Content, null);

        Assert.Equal(StorageStatus.Ok, await _store.QuarantineAsync(digest, QuarantineReason.Digest, CancellationToken.None));

        Assert.False((await _store.StatAsync(digest, CancellationToken.None)).Exists);
        var kept = Assert.Single(Directory.EnumerateFiles(_layout.QuarantineDirectory));
        Assert.Contains(digest.Encoded.ToString(), kept);
        Assert.Contains("digest", kept);
    }

    [Fact]
    public async Task Enumerate_ForeignFiles_AreIgnored()
    {
        var digest = Digest.ComputeSha256(Content);
        await WriteAsync(digest, Content, null);
        var shard = Path.GetDirectoryName(_layout.BlobPath(digest))!;
        await File.WriteAllTextAsync(Path.Combine(shard, "not-a-digest"), "x");

        Assert.Equal([digest], (await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None))).Select(o => o.Digest));
    }

    [Fact]
    public async Task Enumerate_GoesShardByShardInOrder_AndFromAShardSkipsTheOnesBefore()
    {
        var digests = new List<Digest>();
        for (var i = 0; i < 30; i++)
        {
            byte[] content = [.. Content, (byte)i];
            digests.Add(Digest.ComputeSha256(content));
            await WriteAsync(digests[^1], content, null);
        }

        var shards = (await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None)))
            .Select(o => ContentShards.Of(o.Digest).ToString()).ToList();
        var middle = shards.Distinct().Order(StringComparer.Ordinal).ElementAt(shards.Distinct().Count() / 2);
        var fromMiddle = await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, middle, CancellationToken.None));

        Assert.Equal(30, shards.Count);
        Assert.Equal(shards.Order(StringComparer.Ordinal), shards);
        Assert.Equal(
            digests.Where(d => string.CompareOrdinal(ContentShards.Of(d).ToString(), middle) >= 0).Select(d => d.Value).Order(StringComparer.Ordinal),
            fromMiddle.Select(o => o.Digest.Value).Order(StringComparer.Ordinal));
        Assert.Empty(await ToListAsync(_store.EnumerateAsync(DateTimeOffset.MinValue, "sha256:zz", CancellationToken.None)));
    }

    [Theory]
    [InlineData("sha256", "ab", null, false)]
    [InlineData("sha256", "ab", "sha256:ab", false)]
    [InlineData("sha256", "aa", "sha256:ab", true)]
    [InlineData("sha256", "ac", "sha256:ab", false)]
    [InlineData("sha256", "ff", "sha512:00", true)]
    [InlineData("sha512", "00", "sha256:ff", false)]
    public void Shards_AreOrderedByAlgorithmThenPrefix(string algorithm, string prefix, string? from, bool before) =>
        Assert.Equal(before, ContentShards.IsBefore(algorithm, prefix, from));

    [Fact]
    public async Task Enumerate_ObjectsWrittenBeforeNamedSince_AreCountedWithoutTheirDigest()
    {
        var old = Digest.ComputeSha256(Content);
        await WriteAsync(old, Content, null, "application/vnd.oci.image.manifest.v1+json");
        var anHourAgo = DateTime.UtcNow.AddHours(-1);
        File.SetLastWriteTimeUtc(_layout.BlobPath(old), anHourAgo);
        byte[] newContent = [1, 2, 3];
        var recent = Digest.ComputeSha256(newContent);
        await WriteAsync(recent, newContent, null);

        var listed = await ToListAsync(_store.EnumerateAsync(namedSince: DateTime.UtcNow.AddMinutes(-10), fromShard: null, CancellationToken.None));

        Assert.Equal(2, listed.Count);
        var unnamed = Assert.Single(listed, o => !o.IsNamed);
        Assert.Equal((Content.Length, anHourAgo), (unnamed.Size, unnamed.LastWrite.UtcDateTime));
        Assert.Equal(recent, Assert.Single(listed, o => o.IsNamed).Digest);
    }

    [Fact]
    public async Task Enumerate_FilesDeletedWhileTheirDirectoryIsRead_AreSkipped()
    {
        // Eviction deletes files while the scrub or the index rebuild enumerates: the directory has been read, the
        // files are gone by the time they are looked at.
        var digests = Enumerable.Range(0, 10).Select(i => Digest.TryParse($"sha256:00{i:x62}", out var d) ? d : throw new InvalidOperationException()).ToList();
        foreach (var digest in digests)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_layout.BlobPath(digest))!);
            await File.WriteAllBytesAsync(_layout.BlobPath(digest), Content);
        }

        var listed = new List<StoredObject>();
        await using (var objects = _store.EnumerateAsync(DateTimeOffset.MinValue, fromShard: null, CancellationToken.None).GetAsyncEnumerator())
        {
            Assert.True(await objects.MoveNextAsync());
            listed.Add(objects.Current);
            foreach (var digest in digests.Where(d => d != listed[0].Digest))
            {
                File.Delete(_layout.BlobPath(digest));
            }

            while (await objects.MoveNextAsync())
            {
                listed.Add(objects.Current);
            }
        }

        var only = Assert.Single(listed);
        Assert.Equal(Content.Length, only.Size);
    }

    [Fact]
    public void Initialize_StrayFileInTmp_IsRemoved()
    {
        File.WriteAllText(Path.Combine(_layout.TempDirectory, "leftover"), "x");

        Assert.Equal(1, new CacheLayout(_temp.Path).Initialize());
        Assert.Empty(Directory.EnumerateFiles(_layout.TempDirectory));
    }

    [Fact]
    public async Task MetadataStore_WriteReadListDelete_RoundTrips_AndKeysCannotEscapeTheCache()
    {
        var metadata = new FileMetadataStore(_store);
        var key = MetadataKeys.Tag("docker.io", "library/nginx", "1.27");

        Assert.Equal(StorageStatus.Ok, await metadata.WriteAsync(key, "{}"u8.ToArray(), CancellationToken.None));
        Assert.Equal("{}"u8.ToArray(), await metadata.ReadAsync(key, 100, CancellationToken.None));
        Assert.Null(await metadata.ReadAsync(key, 1, CancellationToken.None));
        Assert.Equal(["1.27"], await ToListAsync(metadata.ListAsync(MetadataKeys.Tags("docker.io", "library/nginx"), CancellationToken.None)));
        Assert.Equal([key], await ToListAsync(metadata.EnumerateAsync(MetadataKeys.TagsPrefix, CancellationToken.None)));
        Assert.True(MetadataKeys.TryParseTag(key, out var upstream, out var repository, out var tag));
        Assert.Equal(("docker.io", "library/nginx", "1.27"), (upstream, repository, tag));

        Assert.Equal(StorageStatus.Ok, await metadata.DeleteAsync(key, CancellationToken.None));
        Assert.Null(await metadata.ReadAsync(key, 100, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(async () => await metadata.ReadAsync("tags/../../etc/passwd", 100, CancellationToken.None));
    }

    public void Dispose() => _temp.Dispose();

    private async Task<StorageStatus> WriteAsync(Digest digest, byte[] content, long? expected, string? mediaType = null)
    {
        var (status, writer) = await _store.BeginWriteAsync(digest, expected, CancellationToken.None);
        Assert.Equal(StorageStatus.Ok, status);
        await using (writer!)
        {
            Assert.Equal(StorageStatus.Ok, await writer!.WriteAsync(content, CancellationToken.None));
            return await writer.CommitAsync(mediaType, null, CancellationToken.None);
        }
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
