using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Storage;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.PullThrough;

public sealed class BlobIngestTests : IDisposable
{
    private static readonly byte[] Content = [.. Enumerable.Range(0, 10).Select(i => (byte)('a' + i))];
    private static readonly DownloadLimits Limits = new(TimeSpan.FromMinutes(5), 0, TimeSpan.FromSeconds(30), long.MaxValue);

    private readonly TempDirectory _temp = new();
    private readonly FileContentStore _store;
    private readonly List<BlobIngest> _ingests = [];

    public BlobIngestTests()
    {
        var layout = new CacheLayout(_temp.Path);
        layout.Initialize();
        _store = new FileContentStore(layout, TimeProvider.System, NullLogger<FileContentStore>.Instance);
    }

    [Fact]
    public async Task WaitForDataAsync_AllBytesWritten_HoldsBackTheLastByteUntilStored()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);

        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));
        Assert.Equal(Content.Length, ingest.Written);
        Assert.Equal(Content.Length - 1, await ingest.WaitForDataAsync(0, CancellationToken.None));

        var last = ingest.WaitForDataAsync(Content.Length - 1, CancellationToken.None).AsTask();
        Assert.False(last.IsCompleted);
        ingest.Finish(DownloadOutcome.Stored);

        Assert.Equal(Content.Length, await last);
        Assert.Equal(DownloadOutcome.Stored, ingest.Outcome);
        Assert.Equal(Content.Length, await ingest.WaitForDataAsync(Content.Length, CancellationToken.None));
    }

    [Fact]
    public async Task WaitForDataAsync_UnknownLength_AlsoHoldsBackTheLastByte()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), length: null);

        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));

        Assert.Equal(Content.Length - 1, await ingest.WaitForDataAsync(0, CancellationToken.None));
        var last = ingest.WaitForDataAsync(Content.Length - 1, CancellationToken.None).AsTask();
        Assert.False(last.IsCompleted);
        ingest.Finish(DownloadOutcome.Stored);
        Assert.Equal(Content.Length, await last);
    }

    [Fact]
    public async Task WaitForDataAsync_Waiter_IsWokenByProgress()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();
        Assert.False(waiter.IsCompleted);

        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));

        Assert.Equal(Content.Length - 1, await waiter);
    }

    [Fact]
    public async Task WaitForDataAsync_AfterFailure_ReturnsMinusOne()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();

        ingest.Finish(DownloadOutcome.BrokenOff);

        Assert.Equal(-1, await waiter);
        Assert.Equal(-1, await ingest.WaitForDataAsync(0, CancellationToken.None));
        Assert.True(ingest.IsFailed);
    }

    [Fact]
    public async Task WaitForDataAsync_FailureAfterData_ReturnsMinusOneEvenWithBytesAvailable()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);
        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));

        ingest.Finish(DownloadOutcome.DigestMismatch);

        Assert.Equal(-1, await ingest.WaitForDataAsync(0, CancellationToken.None));
    }

    [Fact]
    public async Task WaitForDataAsync_Cancelled_Throws()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);
        using var cancellation = new CancellationTokenSource();
        var waiter = ingest.WaitForDataAsync(0, cancellation.Token).AsTask();

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
    }

    [Fact]
    public async Task WaitForDataAsync_EmptyBlob_ReturnsZeroOnlyWhenStored()
    {
        var ingest = await StartAsync(Digest.ComputeSha256([]), 0);
        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, []));
        var waiter = ingest.WaitForDataAsync(0, CancellationToken.None).AsTask();
        Assert.False(waiter.IsCompleted);

        ingest.Finish(DownloadOutcome.Stored);

        Assert.Equal(0, await waiter);
    }

    [Fact]
    public async Task CopyAsync_MatchingBody_WritesAndCountsBytes_AndTheStoreCommitsIt()
    {
        var digest = Digest.ComputeSha256(Content);
        var (ingest, writer) = await StartWithWriterAsync(digest, Content.Length);
        long counted = 0;

        var outcome = await ingest.CopyAsync(new MemoryStream(Content), Limits, TimeProvider.System, n => counted += n, CancellationToken.None);

        Assert.Equal(DownloadOutcome.Running, outcome);
        Assert.Equal(Content.Length, counted);
        var buffer = new byte[Content.Length];
        Assert.Equal(Content.Length, await ingest.ReadAsync(0, buffer, CancellationToken.None));
        Assert.Equal(Content, buffer);
        Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, null, CancellationToken.None));
        Assert.True((await _store.StatAsync(digest, CancellationToken.None)).Exists);
    }

    [Fact]
    public async Task Commit_Sha512Digest_VerifiesWithSha512()
    {
        Assert.True(Digest.TryParse("sha512:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA512.HashData(Content)), out var digest));
        var (ingest, writer) = await StartWithWriterAsync(digest, Content.Length);

        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));
        Assert.Equal(StorageStatus.Ok, await writer.CommitAsync(null, null, CancellationToken.None));
    }

    [Fact]
    public async Task Commit_WrongDigest_IsAMismatchAndNothingIsStored()
    {
        var digest = Digest.ComputeSha256("something else"u8);
        var (ingest, writer) = await StartWithWriterAsync(digest, Content.Length);

        Assert.Equal(DownloadOutcome.Running, await CopyAsync(ingest, Content));

        Assert.Equal(StorageStatus.Mismatch, await writer.CommitAsync(null, null, CancellationToken.None));
        Assert.False((await _store.StatAsync(digest, CancellationToken.None)).Exists);
    }

    [Fact]
    public async Task CopyAsync_BodyShorterThanLength_IsTooShort()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);

        Assert.Equal(DownloadOutcome.TooShort, await CopyAsync(ingest, Content[..4]));
    }

    [Fact]
    public async Task CopyAsync_BodyLongerThanLength_IsTooLongAndNothingIsWritten()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), 4);

        Assert.Equal(DownloadOutcome.TooLong, await CopyAsync(ingest, Content));
        Assert.Equal(0, ingest.Written);
    }

    [Fact]
    public async Task CopyAsync_UnknownLengthPastTheLargestKeptBlob_IsTooLong()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), null);

        var outcome = await ingest.CopyAsync(new MemoryStream(Content), Limits with { MaxSize = 5 }, TimeProvider.System, _ => { }, CancellationToken.None);

        Assert.Equal(DownloadOutcome.TooLong, outcome);
    }

    [Fact]
    public async Task CopyAsync_BodyThrowsIOException_IsBrokenOff()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);

        var outcome = await ingest.CopyAsync(new FailingStream(), Limits, TimeProvider.System, _ => { }, CancellationToken.None);

        Assert.Equal(DownloadOutcome.BrokenOff, outcome);
    }

    [Fact]
    public async Task CopyAsync_BodyStalls_IsStalledAfterTheIdleTimeout()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(Content), Content.Length);
        var time = new ManualTimeProvider();
        var stream = new StallingStream();

        var copy = ingest.CopyAsync(stream, Limits with { IdleTimeout = TimeSpan.FromSeconds(30) }, time, _ => { }, CancellationToken.None);
        await stream.Reading;
        time.Advance(TimeSpan.FromSeconds(30));

        Assert.Equal(DownloadOutcome.Stalled, await copy);
    }

    [Fact]
    public async Task CopyAsync_TrickleBelowTheMinimumThroughput_IsTooSlowAfterTheWindow()
    {
        var ingest = await StartAsync(Digest.ComputeSha256(new byte[100]), 100);
        var time = new ManualTimeProvider();
        var stream = new TrickleStream(time, TimeSpan.FromSeconds(1));

        var outcome = await ingest.CopyAsync(stream, Limits with { MinThroughput = 16 * 1024, ThroughputWindow = TimeSpan.FromSeconds(30) }, time, _ => { }, CancellationToken.None);

        Assert.Equal(DownloadOutcome.TooSlow, outcome);
        Assert.InRange(ingest.Written, 29, 32);
    }

    [Fact]
    public async Task SetStarted_NonSuccess_HasNoLengthAndCompletesStarted()
    {
        var ingest = new BlobIngest(Digest.ComputeSha256(Content));

        ingest.SetStarted(new IngestStart(UpstreamOutcome.NotFound, 10, null, "HTTP 404"));

        Assert.Null(ingest.Length);
        Assert.True(ingest.Started.IsCompletedSuccessfully);
        Assert.Equal(UpstreamOutcome.NotFound, (await ingest.Started).Outcome);
    }

    [Fact]
    public async Task TryAddReader_AfterLastReleased_IsRefusedAndTheUncommittedFileIsGone()
    {
        var ingest = new BlobIngest(Digest.ComputeSha256(Content));
        var (_, writer) = await _store.BeginWriteAsync(ingest.Digest, null, CancellationToken.None);
        ingest.Attach(writer!);

        Assert.True(ingest.TryAddReader());
        ingest.ReleaseReader();
        Assert.Single(Directory.EnumerateFiles(_temp.Combine("tmp")));
        ingest.ReleaseReader();

        Assert.False(ingest.TryAddReader());
        Assert.Empty(Directory.EnumerateFiles(_temp.Combine("tmp")));
    }

    public void Dispose()
    {
        foreach (var ingest in _ingests)
        {
            ingest.ReleaseReader();
        }

        _temp.Dispose();
    }

    private async Task<BlobIngest> StartAsync(Digest digest, long? length) => (await StartWithWriterAsync(digest, length)).Ingest;

    private async Task<(BlobIngest Ingest, IContentWriter Writer)> StartWithWriterAsync(Digest digest, long? length)
    {
        var ingest = new BlobIngest(digest);
        var (status, writer) = await _store.BeginWriteAsync(digest, length, CancellationToken.None);
        Assert.Equal(StorageStatus.Ok, status);
        ingest.Attach(writer!);
        ingest.SetStarted(new IngestStart(UpstreamOutcome.Success, length, null, null));
        _ingests.Add(ingest);
        return (ingest, writer!);
    }

    private static Task<DownloadOutcome> CopyAsync(BlobIngest ingest, byte[] body) =>
        ingest.CopyAsync(new MemoryStream(body), Limits, TimeProvider.System, _ => { }, CancellationToken.None);

    /// <summary>A body that sends one byte per <c>interval</c> of the given clock, advancing the clock itself.</summary>
    private sealed class TrickleStream(ManualTimeProvider time, TimeSpan interval) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            time.Advance(interval);
            buffer.Span[0] = 0;
            return ValueTask.FromResult(1);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

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
