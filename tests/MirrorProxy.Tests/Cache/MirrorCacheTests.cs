using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cache;

public sealed class MirrorCacheTests : IDisposable
{
    private static readonly byte[] Manifest = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"""u8.ToArray();
    private static readonly Digest ManifestDigest = Digest.ComputeSha256(Manifest);
    private readonly ManualTimeProvider _time = new();
    private readonly TestCache _test;

    public MirrorCacheTests() => _test = new TestCache(_time);

    private MirrorCache Cache => _test.Cache;

    [Fact]
    public async Task PutManifest_ThenLookupAndRead_GivesBytesSizeKindAndType()
    {
        Assert.Equal(StorageStatus.Ok, await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, TestCache.Public, CancellationToken.None));

        var entry = await Cache.LookupAsync(ManifestDigest, CancellationToken.None);
        Assert.Equal(new ContentEntry(Manifest.Length, ContentKind.Manifest, MediaTypes.OciManifest, _time.GetUtcNow()), entry);
        var (status, content) = await Cache.ReadSmallAsync(ManifestDigest, entry!.Value, CancellationToken.None);
        Assert.Equal(CachedContentStatus.Ok, status);
        Assert.Equal(Manifest, content);
        Assert.Equal(1, Cache.ObjectCount);
        Assert.Equal(Manifest.Length, Cache.TotalBytes);
    }

    [Fact]
    public async Task Lookup_FileAddedBehindTheIndex_IsFoundCountedAndItsKindResolvedFromTheFiles()
    {
        await Cache.PutManifestAsync(ManifestDigest, Manifest, MediaTypes.OciManifest, TestCache.Public, CancellationToken.None);
        await _test.ReopenAsync(clean: true);
        Cache.Index.DeleteContent(ManifestDigest);

        var entry = await Cache.LookupAsync(ManifestDigest, CancellationToken.None);

        Assert.Equal(ContentKind.Unknown, entry!.Value.Kind);
        var resolved = await Cache.ResolveAsync(ManifestDigest, entry.Value, CancellationToken.None);
        Assert.Equal((ContentKind.Manifest, MediaTypes.OciManifest), (resolved.Kind, resolved.MediaType));
        Assert.Equal(resolved, await Cache.LookupAsync(ManifestDigest, CancellationToken.None));
    }

    [Fact]
    public async Task Origins_PrivateContent_StaysPrivateUntilAPublicUpstreamVouches_AndSurvivesALostIndex()
    {
        var harbor = new ContentOrigin("harbor.internal", IsPublic: false);
        var digest = await _test.PutBlobAsync(new byte[100], harbor);
        var entry = (await Cache.LookupAsync(digest, CancellationToken.None))!.Value;
        Assert.True(entry.Origins.Contains("harbor.internal"));
        Assert.False(entry.Origins.IsPublic);

        Directory.Delete(Path.Combine(_test.Root, "index"), recursive: true);
        await _test.ReopenAsync(clean: false);
        var rebuilt = await Cache.ResolveAsync(digest, (await Cache.LookupAsync(digest, CancellationToken.None))!.Value, CancellationToken.None);
        Assert.Equal(entry.Origins, rebuilt.Origins);

        var other = await Cache.VouchAsync(digest, rebuilt, new ContentOrigin("other.internal", IsPublic: false), CancellationToken.None);
        Assert.True(other.Origins.Contains("other.internal") && other.Origins.Contains("harbor.internal"));
        var vouched = await Cache.VouchAsync(digest, other, TestCache.Public, CancellationToken.None);
        Assert.True(vouched.Origins.IsPublic);
        Assert.True((await Cache.LookupAsync(digest, CancellationToken.None))!.Value.Origins.IsPublic);
    }

    [Fact]
    public async Task Open_TruncatedFile_IsQuarantinedNeverServedShort()
    {
        var content = new byte[4096];
        Random.Shared.NextBytes(content);
        var digest = await _test.PutBlobAsync(content);
        await File.WriteAllBytesAsync(_test.BlobPath(digest), content[..100]);
        var entry = (await Cache.LookupAsync(digest, CancellationToken.None))!.Value;

        var (status, reader) = await Cache.OpenAsync(digest, entry, CancellationToken.None);

        Assert.Equal(CachedContentStatus.Damaged, status);
        Assert.Null(reader);
        Assert.Null(await Cache.LookupAsync(digest, CancellationToken.None));
        Assert.Single(Directory.EnumerateFiles(Path.Combine(_test.Root, "quarantine")));
        Assert.Equal(0, Cache.ObjectCount);
    }

    [Fact]
    public async Task Verify_BlobFoundInTheFilesCutShort_IsQuarantined_AWholeOneIsIndexedAsABlob()
    {
        var whole = new byte[300_000];
        var cut = new byte[300_000];
        Random.Shared.NextBytes(whole);
        Random.Shared.NextBytes(cut);
        var wholeDigest = await _test.PutBlobAsync(whole);
        var cutDigest = await _test.PutBlobAsync(cut);
        await _test.ReopenAsync(clean: false);
        await File.WriteAllBytesAsync(_test.BlobPath(cutDigest), cut[..1000]);
        Cache.Index.DeleteContent(wholeDigest);
        Cache.Index.DeleteContent(cutDigest);

        // Learned from the files, an entry's size is the file's own: the size check on open cannot tell.
        var cutEntry = (await Cache.LookupAsync(cutDigest, CancellationToken.None))!.Value;
        Assert.Equal((ContentKind.Unknown, 1000L), (cutEntry.Kind, cutEntry.Size));
        Assert.Equal(ContentKind.FoundBlob, (await Cache.ResolveAsync(cutDigest, cutEntry, CancellationToken.None)).Kind);
        Assert.Equal(ContentKind.FoundBlob, (await Cache.LookupAsync(cutDigest, CancellationToken.None))!.Value.Kind);

        Assert.Equal(CachedContentStatus.Damaged, (await Cache.VerifyAsync(cutDigest, cutEntry, CancellationToken.None)).Status);
        Assert.Null(await Cache.LookupAsync(cutDigest, CancellationToken.None));
        Assert.False(File.Exists(_test.BlobPath(cutDigest)));

        var wholeEntry = (await Cache.LookupAsync(wholeDigest, CancellationToken.None))!.Value;
        var (status, verified) = await Cache.VerifyAsync(wholeDigest, wholeEntry, CancellationToken.None);
        Assert.Equal(CachedContentStatus.Ok, status);
        Assert.Equal(ContentKind.Blob, verified.Kind);
        Assert.Equal(verified, await Cache.LookupAsync(wholeDigest, CancellationToken.None));
    }

    [Fact]
    public async Task ReadSmall_FlippedByte_IsQuarantinedOnLoad()
    {
        var digest = await _test.PutBlobAsync("a small config blob"u8.ToArray());
        Cache.Hot.Remove(digest.Value);
        var path = _test.BlobPath(digest);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[3] ^= 0x20;
        await File.WriteAllBytesAsync(path, bytes);

        var (status, content) = await Cache.ReadSmallAsync(digest, (await Cache.LookupAsync(digest, CancellationToken.None))!.Value, CancellationToken.None);

        Assert.Equal(CachedContentStatus.Damaged, status);
        Assert.Null(content);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Open_FileDeletedBehindTheIndex_IsMissingAndForgotten()
    {
        var digest = await _test.PutBlobAsync(new byte[1000]);
        var entry = (await Cache.LookupAsync(digest, CancellationToken.None))!.Value;
        File.Delete(_test.BlobPath(digest));
        Cache.Hot.Remove(digest.Value);

        Assert.Equal(CachedContentStatus.Missing, (await Cache.OpenAsync(digest, entry, CancellationToken.None)).Status);
        Assert.Null(await Cache.LookupAsync(digest, CancellationToken.None));
    }

    [Fact]
    public async Task Touch_RecordsAccessesAtMinutePrecision()
    {
        var digest = await _test.PutBlobAsync(new byte[10]);
        var entry = (await Cache.Index.GetContentAsync(digest))!.Value;
        var stored = entry.LastAccess;

        _time.Advance(TimeSpan.FromSeconds(30));
        Cache.Touch(digest, entry);
        Assert.Equal(stored, (await Cache.Index.GetContentAsync(digest))!.Value.LastAccess);

        _time.Advance(TimeSpan.FromSeconds(31));
        Cache.Touch(digest, entry);
        Assert.Equal(_time.GetUtcNow(), (await Cache.Index.GetContentAsync(digest))!.Value.LastAccess);
    }

    [Fact]
    public async Task Tags_ConfirmationUpdatesTheIndexOnly_AMoveWritesTheFile()
    {
        var record = new TagRecord(ManifestDigest, MediaTypes.OciManifest, Manifest.Length, _time.GetUtcNow());
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", record, digestChanged: true, CancellationToken.None);
        var file = Path.Combine(_test.Root, "tags", "docker.io", "library", "nginx", "_tags", "latest");
        var written = File.GetLastWriteTimeUtc(file);

        var confirmed = record with { FetchedAt = _time.GetUtcNow().AddMinutes(5) };
        await Cache.PutTagAsync("docker.io", "library/nginx", "latest", confirmed, digestChanged: false, CancellationToken.None);

        Assert.Equal(confirmed, await Cache.GetTagAsync("docker.io", "library/nginx", "latest", CancellationToken.None));
        Assert.Equal(written, File.GetLastWriteTimeUtc(file));
        Assert.Equal(record, MirrorCache.ParseTag(await File.ReadAllBytesAsync(file)));
        Assert.Equal(["latest"], await ListAsync(Cache.ListTagsAsync("docker.io", "library/nginx", CancellationToken.None)));
    }

    [Fact]
    public async Task Tags_AfterACrash_TheFileIsTheTruthUntilTheRebuild()
    {
        var old = new TagRecord(ManifestDigest, MediaTypes.OciManifest, 1, _time.GetUtcNow());
        await Cache.PutTagAsync("docker.io", "library/app", "1", old, digestChanged: true, CancellationToken.None);
        await Cache.Index.CheckpointAsync(full: true, CancellationToken.None);
        var moved = new TagRecord(Digest.ComputeSha256("newer"u8), MediaTypes.OciIndex, 2, _time.GetUtcNow().AddMinutes(1));
        await Cache.PutTagAsync("docker.io", "library/app", "1", moved, digestChanged: true, CancellationToken.None);

        await _test.ReopenAsync(clean: false);

        Assert.False(Cache.IndexTrusted);
        Assert.Equal(moved, await Cache.GetTagAsync("docker.io", "library/app", "1", CancellationToken.None));
    }

    [Fact]
    public async Task Tags_DamagedFile_IsAbsent()
    {
        Directory.CreateDirectory(Path.Combine(_test.Root, "tags", "docker.io", "x", "_tags"));
        await File.WriteAllTextAsync(Path.Combine(_test.Root, "tags", "docker.io", "x", "_tags", "t"), "{ not json");
        await _test.ReopenAsync(clean: false);

        Assert.Null(await Cache.GetTagAsync("docker.io", "x", "t", CancellationToken.None));
    }

    [Fact]
    public async Task Totals_SurviveACleanStop()
    {
        await _test.PutBlobAsync(new byte[100]);
        await _test.PutBlobAsync(new byte[200]);

        await _test.ReopenAsync(clean: true);
        await Cache.LoadTotalsAsync();

        Assert.True(Cache.IndexTrusted);
        Assert.Equal((2L, 300L), (Cache.ObjectCount, Cache.TotalBytes));
    }

    [Fact]
    public async Task Evict_RemovesFileIndexAndCounts()
    {
        var digest = await _test.PutBlobAsync(new byte[100]);

        Assert.Equal(100, await Cache.EvictAsync(digest, 100, CancellationToken.None));

        Assert.False(File.Exists(_test.BlobPath(digest)));
        Assert.Null(await Cache.LookupAsync(digest, CancellationToken.None));
        Assert.Equal(0, Cache.TotalBytes);
    }

    public void Dispose() => _test.Dispose();

    private static async Task<List<string>> ListAsync(IAsyncEnumerable<string> items)
    {
        var list = new List<string>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
