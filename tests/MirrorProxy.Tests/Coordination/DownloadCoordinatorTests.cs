using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Coordination;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Coordination;

public sealed class DownloadCoordinatorTests : IDisposable
{
    private readonly TempDirectory _bucket = new();
    private readonly FileContentStore _sharedStore;
    private readonly TestCache _cache;
    private readonly ScriptedCoordination _coordination = new();

    public DownloadCoordinatorTests()
    {
        var layout = new CacheLayout(_bucket.Path);
        layout.Initialize();
        _sharedStore = new FileContentStore(layout, TimeProvider.System, NullLogger<FileContentStore>.Instance);
        var tier = new SharedTier(_sharedStore, new FileMetadataStore(_sharedStore), () => true, 1 << 20, 1, TestUpstreams.Background, NullLogger<SharedTier>.Instance);
        _cache = new TestCache(shared: tier);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _bucket.Dispose();
    }

    private DownloadCoordinator Create(ICoordination coordination, TimeSpan? maxWait = null) =>
        new(coordination, _cache.Cache, Options.Create(new CoordinationOptions { Redis = "127.0.0.1:1", MaxWait = maxWait ?? TimeSpan.FromMinutes(1) }), TimeProvider.System,
            NullLogger<DownloadCoordinator>.Instance);

    private static readonly Digest Blob = Digest.ComputeSha256("a layer"u8);

    [Fact]
    public async Task AloneMirror_ClaimsAtOnce_WithoutALease()
    {
        var (claim, lease) = await Create(new LocalCoordination()).ClaimAsync(Blob, CancellationToken.None);

        Assert.Equal((DownloadClaim.Claimed, (Lease?)null), (claim, lease));
    }

    [Fact]
    public async Task AFreeLease_IsTaken()
    {
        var (claim, lease) = await Create(_coordination).ClaimAsync(Blob, CancellationToken.None);

        Assert.Equal(DownloadClaim.Claimed, claim);
        Assert.NotNull(lease);
        await lease!.DisposeAsync();
        Assert.Equal(1, _coordination.Released);
    }

    [Fact]
    public async Task WhileAnotherReplicaHoldsIt_TheWaiterReadsTheBlobOnceItIsShared()
    {
        _coordination.HeldElsewhere = true;
        var claiming = Create(_coordination).ClaimAsync(Blob, CancellationToken.None).AsTask();
        await Task.Delay(200);
        Assert.False(claiming.IsCompleted);

        await PutSharedAsync("a layer"u8.ToArray());

        var (claim, lease) = await claiming.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((DownloadClaim.StoredElsewhere, (Lease?)null), (claim, lease));
    }

    [Fact]
    public async Task AHolderThatDiesWithoutSharing_IsTakenOver()
    {
        _coordination.HeldElsewhere = true;
        var claiming = Create(_coordination).ClaimAsync(Blob, CancellationToken.None).AsTask();
        await Task.Delay(200);

        _coordination.HeldElsewhere = false;

        var (claim, lease) = await claiming.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(DownloadClaim.Claimed, claim);
        Assert.NotNull(lease);
    }

    [Fact]
    public async Task AnUnreachableCoordinationStore_MeansDownloadingAlone()
    {
        _coordination.Unreachable = true;

        var (claim, lease) = await Create(_coordination).ClaimAsync(Blob, CancellationToken.None);

        Assert.Equal((DownloadClaim.Uncoordinated, (Lease?)null), (claim, lease));
    }

    [Fact]
    public async Task AWaitLongerThanMaxWait_EndsInDownloadingAlone()
    {
        _coordination.HeldElsewhere = true;

        var (claim, _) = await Create(_coordination, maxWait: TimeSpan.FromMilliseconds(300)).ClaimAsync(Blob, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(DownloadClaim.Uncoordinated, claim);
    }

    private async Task PutSharedAsync(byte[] content)
    {
        var (_, writer) = await _sharedStore.BeginWriteAsync(Blob, content.Length, CancellationToken.None);
        await using (writer!)
        {
            await writer!.WriteAsync(content, CancellationToken.None);
            Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, null, CancellationToken.None));
        }
    }

    /// <summary>A coordination store whose answers the test sets.</summary>
    private sealed class ScriptedCoordination : ICoordination
    {
        public volatile bool HeldElsewhere;
        public volatile bool Unreachable;
        private int _released;

        public int Released => Volatile.Read(ref _released);

        public bool IsShared => true;

        public bool IsReachable => !Unreachable;

        public string Describe => "scripted";

        public ValueTask<bool> PingAsync(CancellationToken cancellationToken) => ValueTask.FromResult(!Unreachable);

        public ValueTask<(LeaseStatus Status, Lease? Lease)> TryAcquireAsync(string name, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(LeaseStatus, Lease?)>(
                Unreachable ? (LeaseStatus.Unavailable, null)
                : HeldElsewhere ? (LeaseStatus.HeldElsewhere, null)
                : (LeaseStatus.Acquired, new Lease(name, TimeSpan.FromSeconds(30), _ => ValueTask.FromResult(true), () =>
                {
                    Interlocked.Increment(ref _released);
                    return ValueTask.CompletedTask;
                }, TimeProvider.System)));

        public ValueTask<bool> IsHeldAsync(string name, CancellationToken cancellationToken) => ValueTask.FromResult(HeldElsewhere);

        public ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken) => ValueTask.FromResult<TagRecord?>(null);

        public ValueTask PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void RecordAccess(Digest digest, DateTimeOffset when)
        {
        }

        public ValueTask<DateTimeOffset?[]> GetAccessAsync(IReadOnlyList<Digest> digests, CancellationToken cancellationToken) => ValueTask.FromResult(new DateTimeOffset?[digests.Count]);

        public void ForgetAccess(Digest digest)
        {
        }
    }
}
