using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.PullThrough;

public sealed class BlobIngestTests : IDisposable
{
    private static readonly byte[] Content = [.. Enumerable.Range(0, 10).Select(i => (byte)('a' + i))];
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(5);

    private readonly TempDirectory _temp = new();
    private readonly List<BlobIngest> _ingests = [];

    [Fact]
    public async Task WaitForDataAsync_AllBytesWritten_HoldsBackTheLastByteUntilComplete()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);

        Assert.Null(await CopyAsync(ingest, Content));
        Assert.Equal(Content.Length, ingest.Written);
        Assert.Equal(Content.Length - 1, await ingest.WaitForDataAsync(0, CancellationToken.None));

        var last = ingest.WaitForDataAsync(Content.Length - 1, CancellationToken.None).AsTask();
        Assert.False(last.IsCompleted);
        ingest.Complete();

        Assert.Equal(Content.Length, await last);
        Assert.Equal(IngestState.Completed, ingest.State);
        Assert.Equal(Content.Length, await ingest.WaitForDataAsync(Content.Length, CancellationToken.None));
    }

    [Fact]
    public async Task WaitForDataAsync_UnknownLength_AlsoHoldsBackTheLastByte()
    {
        var ingest = Start(Digest.ComputeSha256(Content), length: null);

        Assert.Null(await CopyAsync(ingest, Content));

        Assert.Equal(Content.Length - 1, await ingest.WaitForDataAsync(0, CancellationToken.None));
        var last = ingest.WaitForDataAsync(Content.Length - 1, CancellationToken.None).AsTask();
        Assert.False(last.IsCompleted);
        ingest.Complete();
        Assert.Equal(Content.Length, await last);
    }

    [Fact]
    public async Task WaitForDataAsync_Waiter_IsWokenByProgress()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();
        Assert.False(waiter.IsCompleted);

        Assert.Null(await CopyAsync(ingest, Content));

        Assert.Equal(Content.Length - 1, await waiter);
    }

    [Fact]
    public async Task WaitForDataAsync_AfterFail_ReturnsMinusOne()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();

        ingest.Fail();

        Assert.Equal(-1, await waiter);
        Assert.Equal(-1, await ingest.WaitForDataAsync(0, CancellationToken.None));
        Assert.Equal(IngestState.Failed, ingest.State);
    }

    [Fact]
    public async Task WaitForDataAsync_FailAfterData_ReturnsMinusOneEvenWithBytesAvailable()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        Assert.Null(await CopyAsync(ingest, Content));

        ingest.Fail();

        Assert.Equal(-1, await ingest.WaitForDataAsync(0, CancellationToken.None));
    }

    [Fact]
    public async Task WaitForDataAsync_Cancelled_Throws()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        using var cancellation = new CancellationTokenSource();
        var waiter = ingest.WaitForDataAsync(0, cancellation.Token).AsTask();

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
    }

    [Fact]
    public async Task WaitForDataAsync_EmptyBlob_ReturnsZeroOnlyWhenComplete()
    {
        var ingest = Start(Digest.ComputeSha256([]), 0);
        Assert.Null(await CopyAsync(ingest, []));
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();
        Assert.False(waiter.IsCompleted);

        ingest.Complete();

        Assert.Equal(0, await waiter);
    }

    [Fact]
    public async Task CopyAsync_MatchingBody_WritesTheFileAndCountsBytes()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        long counted = 0;

        var error = await ingest.CopyAsync(new MemoryStream(Content), Idle, TimeProvider.System, n => counted += n, CancellationToken.None);

        Assert.Null(error);
        Assert.Equal(Content.Length, counted);
        var buffer = new byte[Content.Length];
        Assert.Equal(Content.Length, RandomAccess.Read(ingest.Handle, buffer, 0));
        Assert.Equal(Content, buffer);
    }

    [Fact]
    public async Task CopyAsync_Sha512Digest_VerifiesWithSha512()
    {
        Assert.True(Digest.TryParse("sha512:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA512.HashData(Content)), out var digest));
        var ingest = Start(digest, Content.Length);

        Assert.Null(await CopyAsync(ingest, Content));
    }

    [Fact]
    public async Task CopyAsync_WrongDigest_ReportsDigestMismatch()
    {
        var ingest = Start(Digest.ComputeSha256("something else"u8), Content.Length);

        var error = await CopyAsync(ingest, Content);

        Assert.NotNull(error);
        Assert.StartsWith("digest mismatch", error);
    }

    [Fact]
    public async Task CopyAsync_BodyShorterThanLength_ReportsTheTruncation()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);

        var error = await CopyAsync(ingest, Content[..4]);

        Assert.Equal("upstream body ended after 4 of 10 bytes", error);
    }

    [Fact]
    public async Task CopyAsync_BodyLongerThanLength_IsRejected()
    {
        var ingest = Start(Digest.ComputeSha256(Content), 4);

        var error = await CopyAsync(ingest, Content);

        Assert.NotNull(error);
        Assert.Contains("more than the announced 4 bytes", error);
        Assert.Equal(0, ingest.Written);
    }

    [Fact]
    public async Task CopyAsync_BodyThrowsIOException_ReportsTheFailure()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);

        var error = await ingest.CopyAsync(new FailingStream(), Idle, TimeProvider.System, _ => { }, CancellationToken.None);

        Assert.NotNull(error);
        Assert.Contains("connection reset", error);
    }

    [Fact]
    public async Task CopyAsync_BodyStalls_ReportsTheIdleTimeout()
    {
        var ingest = Start(Digest.ComputeSha256(Content), Content.Length);
        var time = new ManualTimeProvider();
        var stream = new StallingStream();

        var copy = ingest.CopyAsync(stream, TimeSpan.FromSeconds(30), time, _ => { }, CancellationToken.None);
        await stream.Reading;
        time.Advance(TimeSpan.FromSeconds(30));

        var error = await copy;
        Assert.NotNull(error);
        Assert.StartsWith("no data from upstream for 30 s", error);
    }

    [Fact]
    public async Task SetStarted_NonSuccess_HasNoLengthAndCompletesStarted()
    {
        var ingest = new BlobIngest(Digest.ComputeSha256(Content), _temp.Combine("x"));

        ingest.SetStarted(new IngestStart(UpstreamOutcome.NotFound, 10, null, "HTTP 404"));

        Assert.Null(ingest.Length);
        Assert.True(ingest.Started.IsCompletedSuccessfully);
        Assert.Equal(UpstreamOutcome.NotFound, (await ingest.Started).Outcome);
    }

    [Fact]
    public void TryAddReader_AfterLastReleased_IsRefusedAndFileClosed()
    {
        var ingest = new BlobIngest(Digest.ComputeSha256(Content), _temp.Combine("readers"));
        ingest.OpenFile();
        var handle = ingest.Handle;

        Assert.True(ingest.TryAddReader());
        ingest.ReleaseReader();
        Assert.False(handle.IsClosed);
        ingest.ReleaseReader();

        Assert.True(handle.IsClosed);
        Assert.False(ingest.TryAddReader());
    }

    public void Dispose()
    {
        foreach (var ingest in _ingests)
        {
            ingest.ReleaseReader();
        }

        _temp.Dispose();
    }

    private BlobIngest Start(Digest digest, long? length)
    {
        var ingest = new BlobIngest(digest, _temp.Combine(Guid.NewGuid().ToString("N")));
        ingest.OpenFile();
        ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, length, null, null));
        _ingests.Add(ingest);
        return ingest;
    }

    private static Task<string?> CopyAsync(BlobIngest ingest, byte[] body) =>
        ingest.CopyAsync(new MemoryStream(body), Idle, TimeProvider.System, _ => { }, CancellationToken.None);

    private sealed class FailingStream : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<int>(new IOException("connection reset by peer"));

        public override int Read(byte[] buffer, int offset, int count) => throw new IOException("connection reset by peer");

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A body that never sends a byte; reports when the first read is waiting.</summary>
    private sealed class StallingStream : Stream
    {
        private readonly TaskCompletionSource _reading = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reading => _reading.Task;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _reading.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
