using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cache;

public sealed class MirrorCacheTests : IDisposable
{
    private static readonly byte[] Manifest = Encoding.UTF8.GetBytes("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}""");
    private static readonly Digest ManifestDigest = Digest.ComputeSha256(Manifest);
    private static readonly TagRecord LatestRecord = new(ManifestDigest, MediaTypes.OciManifest, Manifest.Length, DateTimeOffset.FromUnixTimeMilliseconds(1_750_000_000_123));

    private readonly TempDirectory _temp = new();
    private MirrorCache? _cache;

    private MirrorCache Cache => _cache ??= Open();

    [Fact]
    public async Task PutManifestAsync_ThenRead_ReturnsBytesSizeAndMediaType()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);

        var entry = await Cache.TryGetContentAsync(ManifestDigest);
        Assert.Equal(new ContentEntry(Manifest.Length, MediaTypes.OciManifest), entry);
        Assert.Equal(Manifest, await Cache.ReadContentAsync(ManifestDigest, CancellationToken.None));
        Assert.True(File.Exists(Cache.Store.BlobPath(ManifestDigest)));
    }

    [Fact]
    public async Task TryGetContentAsync_UnknownDigest_IsNull()
    {
        Assert.Null(await Cache.TryGetContentAsync(Digest.ComputeSha256("nothing"u8)));
        Assert.Null(await Cache.ReadContentAsync(Digest.ComputeSha256("nothing"u8), CancellationToken.None));
    }

    [Fact]
    public async Task PutTagAsync_ThenRead_ReturnsTheSameRecord()
    {
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);

        Assert.Equal(LatestRecord, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
        Assert.Null(await Cache.TryGetTagAsync("docker.io", "library/nginx", "1.27"));
        Assert.Null(await Cache.TryGetTagAsync("ghcr.io", "library/nginx", "latest"));
    }

    [Fact]
    public async Task PutTagAsync_Overwrite_ReturnsTheNewRecord()
    {
        var newer = LatestRecord with { Digest = Digest.ComputeSha256("v2"u8), FetchedAt = LatestRecord.FetchedAt.AddMinutes(1) };
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);

        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", newer, CancellationToken.None);

        Assert.Equal(newer, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
    }

    [Fact]
    public async Task PutTagAsync_Sha512Digest_RoundTrips()
    {
        Assert.True(Digest.TryParse("sha512:" + new string('c', 128), out var digest));
        var record = LatestRecord with { Digest = digest };

        await Cache.PutTagAsync("docker.io", "library/nginx", "sha512", record, CancellationToken.None);

        Assert.Equal(record, await Cache.TryGetTagAsync("docker.io", "library/nginx", "sha512"));
    }

    [Fact]
    public async Task Open_AfterIndexDirectoryDeleted_RebuildsFromTheFiles()
    {
        var blob = await PublishBlobAsync("blob bytes"u8.ToArray());
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);
        await Cache.CheckpointAsync(CancellationToken.None);
        Reopen(beforeOpen: () => Directory.Delete(_temp.Combine("index"), recursive: true));

        Assert.Equal(new ContentEntry(Manifest.Length, MediaTypes.OciManifest), await Cache.TryGetContentAsync(ManifestDigest));
        Assert.Equal(new ContentEntry(10, null), await Cache.TryGetContentAsync(blob));
        Assert.Equal(LatestRecord, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
        Assert.Equal(Manifest, await Cache.ReadContentAsync(ManifestDigest, CancellationToken.None));
    }

    [Fact]
    public async Task Open_AfterCheckpoint_RecoversTheIndex()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);
        await Cache.CheckpointAsync(CancellationToken.None);
        Reopen();

        Assert.Equal(new ContentEntry(Manifest.Length, MediaTypes.OciManifest), await Cache.TryGetContentAsync(ManifestDigest));
        Assert.Equal(LatestRecord, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
    }

    [Fact]
    public async Task Open_GarbageOverCheckpointFiles_StillOpensAndFindsContent()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);
        await Cache.CheckpointAsync(CancellationToken.None);
        var checkpoints = _temp.Combine("index", "checkpoints");

        Reopen(beforeOpen: () =>
        {
            var files = Directory.GetFiles(checkpoints, "*", SearchOption.AllDirectories);
            Assert.NotEmpty(files);
            foreach (var file in files)
            {
                File.WriteAllBytes(file, Encoding.ASCII.GetBytes("this is not a FASTER checkpoint \0\xff\x01 garbage"));
            }
        });

        Assert.Equal(new ContentEntry(Manifest.Length, MediaTypes.OciManifest), await Cache.TryGetContentAsync(ManifestDigest));
        Assert.Equal(LatestRecord, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
    }

    [Fact]
    public async Task Open_EmptiedCheckpointFiles_StillOpensAndFindsContent()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        await Cache.CheckpointAsync(CancellationToken.None);
        var checkpoints = _temp.Combine("index", "checkpoints");

        Reopen(beforeOpen: () =>
        {
            foreach (var file in Directory.GetFiles(checkpoints, "*", SearchOption.AllDirectories))
            {
                File.WriteAllBytes(file, []);
            }
        });

        Assert.Equal(new ContentEntry(Manifest.Length, MediaTypes.OciManifest), await Cache.TryGetContentAsync(ManifestDigest));
    }

    [Fact]
    public void Open_StrayFileInTmp_IsRemoved()
    {
        var tmp = _temp.Combine("tmp");
        Directory.CreateDirectory(tmp);
        var stray = Path.Combine(tmp, "interrupted-download");
        File.WriteAllText(stray, "partial");

        _ = Cache;

        Assert.False(File.Exists(stray));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp));
    }

    [Fact]
    public async Task ReadContentAsync_FileDeletedBehindTheIndex_IsNullAndForgotten()
    {
        Reopen(memorySize: 0);
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        Assert.NotNull(await Cache.TryGetContentAsync(ManifestDigest));

        File.Delete(Cache.Store.BlobPath(ManifestDigest));

        Assert.Null(await Cache.ReadContentAsync(ManifestDigest, CancellationToken.None));
        Assert.Null(await Cache.TryGetContentAsync(ManifestDigest));
    }

    [Fact]
    public async Task ReadContentAsync_SmallContentIsHeldInMemory_UntilForgotten()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        File.Delete(Cache.Store.BlobPath(ManifestDigest));

        Assert.Equal(Manifest, await Cache.ReadContentAsync(ManifestDigest, CancellationToken.None));

        Cache.Forget(ManifestDigest);

        Assert.Null(await Cache.ReadContentAsync(ManifestDigest, CancellationToken.None));
        Assert.Equal(0, Cache.Hot.Bytes);
    }

    [Fact]
    public async Task TryGetContentAsync_FileAddedBehindTheIndex_IsFoundAndIndexed()
    {
        var content = "written by another process"u8.ToArray();
        var digest = Digest.ComputeSha256(content);
        var path = Cache.Store.BlobPath(digest);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllBytesAsync(path, content);

        Assert.Equal(new ContentEntry(content.Length, null), await Cache.TryGetContentAsync(digest));
    }

    [Fact]
    public async Task PublishBlob_TempFile_MovesToItsContentAddress()
    {
        var content = "layer"u8.ToArray();
        var digest = await PublishBlobAsync(content);

        Assert.Equal(new ContentEntry(content.Length, null), await Cache.TryGetContentAsync(digest));
        var encoded = digest.Encoded.ToString();
        Assert.Equal(_temp.Combine("blobs", "sha256", encoded[..2], encoded), Cache.Store.BlobPath(digest));
        Assert.Equal(content, await File.ReadAllBytesAsync(Cache.Store.BlobPath(digest)));
        Assert.Empty(Directory.EnumerateFiles(_temp.Combine("tmp")));
    }

    [Fact]
    public async Task RebuildIndex_SkipsTypeFilesAndForeignNames()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, CancellationToken.None);
        await PublishBlobAsync("blob"u8.ToArray());
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", LatestRecord, CancellationToken.None);
        await Cache.PutTagAsync("ghcr.io", "org/team/app", "v1", LatestRecord, CancellationToken.None);
        File.WriteAllText(_temp.Combine("blobs", "sha256", "junk.txt"), "not content");
        Directory.CreateDirectory(_temp.Combine("blobs", "md5", "d4"));
        File.WriteAllText(_temp.Combine("blobs", "md5", "d4", "d41d8cd98f00b204e9800998ecf8427e"), "");

        var (content, tags) = Cache.RebuildIndex();

        Assert.Equal(2, content);
        Assert.Equal(2, tags);
        Assert.Equal(LatestRecord, await Cache.TryGetTagAsync("ghcr.io", "org/team/app", "v1"));
    }

    [Fact]
    public async Task TryGetTagAsync_DamagedTagFile_IsTreatedAsAbsent()
    {
        var path = Cache.Store.TagPath("docker.io", "library/nginx", "broken");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, """{"digest":"sha256:nothex","mediaType":"x","size":1,"fetchedAt":"2025-01-01T00:00:00Z"}""");

        Assert.Null(await Cache.TryGetTagAsync("docker.io", "library/nginx", "broken"));
    }

    [Fact]
    public async Task PutListingAsync_ThenRead_RoundTripsAndMissingIsNull()
    {
        var body = """{"name":"nginx","tags":["a"]}"""u8.ToArray();

        await Cache.PutListingAsync("docker.io", "library/nginx", "tags-n2", body, CancellationToken.None);

        Assert.Equal(body, await Cache.TryReadListingAsync("docker.io", "library/nginx", "tags-n2", CancellationToken.None));
        Assert.Null(await Cache.TryReadListingAsync("docker.io", "library/nginx", "tags", CancellationToken.None));
        Assert.Null(await Cache.TryReadListingAsync("docker.io", "nowhere", "tags", CancellationToken.None));
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _temp.Dispose();
    }

    private MirrorCache Open(long? memorySize = null) => MirrorCache.Open(
        new CacheOptions { Path = _temp.Path, MemorySize = new MirrorProxy.Hosting.ByteSize(memorySize ?? 16L << 20) }, TimeProvider.System, NullLogger.Instance);

    private void Reopen(Action? beforeOpen = null, long? memorySize = null)
    {
        _cache?.Dispose();
        _cache = null;
        beforeOpen?.Invoke();
        _cache = Open(memorySize);
    }

    private async Task<Digest> PublishBlobAsync(byte[] content)
    {
        var digest = Digest.ComputeSha256(content);
        var temp = Cache.Store.NewTempPath();
        await File.WriteAllBytesAsync(temp, content);
        Cache.PublishBlob(temp, digest, content.Length);
        return digest;
    }

    [Fact]
    public async Task Open_AfterACrashFollowingACheckpoint_TagIsTheNewestOnDisk()
    {
        var older = LatestRecord;
        var newer = new TagRecord(Digest.ComputeSha256("b"u8), MediaTypes.OciManifest, 1, LatestRecord.FetchedAt.AddMinutes(1));
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", older, CancellationToken.None);
        await Cache.CheckpointAsync(CancellationToken.None);
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", newer, CancellationToken.None);

        Reopen(); // no checkpoint after the second write: as after a crash

        Assert.Equal(newer, await Cache.TryGetTagAsync("docker.io", "library/nginx", "latest"));
    }
}
