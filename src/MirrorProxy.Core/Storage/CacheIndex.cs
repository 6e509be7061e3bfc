using System.Buffers.Binary;
using System.Collections.Concurrent;
using FASTER.core;
using Microsoft.Extensions.Logging;
using MirrorProxy.Oci;

namespace MirrorProxy.Storage;

/// <summary>Whether a compaction of the index log ran to its end.</summary>
internal enum IndexCompactionOutcome
{
    Compacted,
    /// <summary>FASTER or the disk failed it; the log keeps its old records.</summary>
    Failed,
}

/// <summary>A compaction's outcome, the log bytes before and after it, and why it failed.</summary>
internal readonly record struct IndexCompaction(IndexCompactionOutcome Outcome, long Before, long After, string? Failure);

/// <summary>How the index came up.</summary>
internal enum IndexRecovery
{
    /// <summary>Recovered from the checkpoint of a clean stop: it agrees with the files.</summary>
    Clean,
    /// <summary>Recovered from a checkpoint older than the files (the process was killed): it may lag behind them.</summary>
    Stale,
    /// <summary>No usable checkpoint (first start, or a damaged index that was discarded): empty.</summary>
    Empty,
}

/// <summary>
/// The cache's one index, in FASTER (<c>FasterKV&lt;SpanByte, SpanByte&gt;</c>, values inline in the hybrid log, memory
/// budget fixed by configuration): content entries (size, kind, media type, last access), tags, and small state
/// records. It is a cache of what the files say, never the truth: when it cannot be recovered it is wiped and
/// rebuilt from them, and callers check the files on every miss. Nothing here grows with the number of entries but
/// FASTER's own overflow buckets when the hash table is sized too small for the cache.
/// </summary>
internal sealed partial class CacheIndex : IDisposable
{
    private const string CleanMarker = "clean-stop";
    private const string LogFileName = "hlog.log";
    private const int SegmentBits = 22;
    private const int PageBits = 16;

    /// <summary>
    /// Log pages read back into memory at recovery: the newest 1 MiB (about 14,000 records, the ones most recently
    /// stored or used). FASTER would fill all of <see cref="IndexSettings.LogMemoryBytes"/> with the log's tail, which
    /// at start is memory spent on records nobody asked for yet; older records are read from disk when looked up, and
    /// new ones fill the log memory again as the mirror serves.
    /// </summary>
    private const int PreloadPages = 16;

    private readonly string _directory;
    private readonly FasterKVSettings<SpanByte, SpanByte> _settings;
    private readonly FasterKV<SpanByte, SpanByte> _store;
    private readonly ConcurrentBag<Session> _sessions = [];
    private readonly ILogger _logger;
    private readonly WriteFailure _writeFailure;
    private long _changes;
    private long _writesDropped;
    private long _checkpointedChanges;
    private long _sizeAfterCompaction;
    private bool _hasIndexCheckpoint;

    // Compaction truncates the log a scan may be reading: one at a time.
    private readonly Lock _logGate = new();

    private sealed class Functions : SpanByteFunctions_ByteArrayOutput<Empty>;

    private sealed class Session(ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, Functions> inner)
    {
        public ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, Functions> Inner { get; } = inner;
    }

    private CacheIndex(
        string directory, FasterKVSettings<SpanByte, SpanByte> settings, FasterKV<SpanByte, SpanByte> store, IndexRecovery recovery, WriteFailure writeFailure, ILogger logger)
    {
        _directory = directory;
        _writeFailure = writeFailure;
        _settings = settings;
        _store = store;
        Recovery = recovery;
        _logger = logger;
        _sizeAfterCompaction = LogBytes;
        _hasIndexCheckpoint = recovery != IndexRecovery.Empty;
    }

    public IndexRecovery Recovery { get; }

    /// <summary>
    /// False once a write of the log to disk failed (a full disk, an I/O error). FASTER never retries such a write,
    /// and a later write that needs its page's memory would wait for it forever; from then on the index answers
    /// what it holds and takes no writes (they are dropped and counted), takes no checkpoint and is not closed as
    /// clean: the next start rebuilds it from the files, which stay the truth.
    /// </summary>
    public bool AcceptsWrites => !_writeFailure.HasFailed;

    /// <summary>Writes dropped since <see cref="AcceptsWrites"/> became false: while nonzero, the index may lag behind the files.</summary>
    public long WritesDropped => Interlocked.Read(ref _writesDropped);

    /// <summary>Bytes of log between its begin and tail: what compaction keeps bounded.</summary>
    public long LogBytes => _store.Log.TailAddress - _store.Log.BeginAddress;

    /// <summary>Opens the index in <paramref name="directory"/>, discarding it when recovery fails.</summary>
    public static CacheIndex Open(string directory, IndexSettings settings, ILogger logger)
    {
        Directory.CreateDirectory(directory);
        var marker = Path.Combine(directory, CleanMarker);
        var clean = File.Exists(marker);
        var checkpoints = Path.Combine(directory, "checkpoints");
        var hasCheckpoint = Directory.Exists(checkpoints) && Directory.EnumerateFileSystemEntries(checkpoints).Any();
        try
        {
            // From here on the index is ahead of any clean-stop checkpoint until the next clean stop.
            File.Delete(marker);
            if (hasCheckpoint && !IndexSeal.Verify(directory, out var damage))
            {
                // Never hand FASTER bytes it cannot survive (see IndexSeal).
                throw new InvalidDataException(damage);
            }

            return Create(directory, settings, recover: hasCheckpoint, clean, logger);
        }
        catch (Exception ex) when (ex is FasterException or IOException or InvalidOperationException or ArgumentException or IndexOutOfRangeException
            or NullReferenceException or InvalidDataException or FormatException)
        {
            // FASTER throws assorted exceptions on damaged checkpoints. The files are the truth: start over.
            Log.IndexDiscarded(logger, directory, ex.Message);
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }

            return Create(directory, settings, recover: false, clean: false, logger);
        }
    }

    private static CacheIndex Create(string directory, IndexSettings options, bool recover, bool clean, ILogger logger)
    {
        Directory.CreateDirectory(directory);
        var writeFailure = new WriteFailure(directory, logger);
        var settings = new FasterKVSettings<SpanByte, SpanByte>(directory, deleteDirOnDispose: false, logger: null)
        {
            IndexSize = options.IndexSizeBytes,
            PageSize = 1L << PageBits,
            MemorySize = options.LogMemoryBytes,
            SegmentSize = 1L << SegmentBits,
            MutableFraction = 0.5,
            RemoveOutdatedCheckpoints = true,
            TryRecoverLatest = false,
        };
        settings.LogDevice = new WriteWatchingDevice(settings.LogDevice, writeFailure.Fail);

        FasterKV<SpanByte, SpanByte>? store = null;
        try
        {
            store = new FasterKV<SpanByte, SpanByte>(settings);
            if (recover)
            {
                try
                {
                    store.Recover(numPagesToPreload: PreloadPages);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // As FASTER's own TryRecoverLatest does: a checkpoint that does not recover leaves the version at 1,
                    // which below means an empty index, rebuilt from the files.
                    Log.RecoveryFailed(logger, directory, ex.Message);
                }
            }

            var recovered = recover && store.RecoveredVersion > 1;
            if (!recovered)
            {
                // A new log is written over the old one's files: the old seal's hashes must not be taken for it.
                IndexSeal.Discard(directory);
            }

            var recovery = !recovered ? IndexRecovery.Empty : clean ? IndexRecovery.Clean : IndexRecovery.Stale;
            return new CacheIndex(directory, settings, store, recovery, writeFailure, logger);
        }
        catch
        {
            store?.Dispose();
            settings.Dispose();
            throw;
        }
    }

    public async ValueTask<ContentEntry?> GetContentAsync(Digest digest)
    {
        Span<byte> key = stackalloc byte[IndexRecords.MaxContentKeyLength];
        var length = IndexRecords.WriteContentKey(digest, key);
        var value = await GetAsync(key[..length].ToArray()).ConfigureAwait(false);
        return value is not null && IndexRecords.TryReadContentValue(value, out var entry) ? entry : null;
    }

    public void PutContent(Digest digest, in ContentEntry entry)
    {
        Span<byte> key = stackalloc byte[IndexRecords.MaxContentKeyLength];
        var length = IndexRecords.WriteContentKey(digest, key);
        Upsert(key[..length], IndexRecords.ContentValue(entry));
    }

    public void DeleteContent(Digest digest)
    {
        Span<byte> key = stackalloc byte[IndexRecords.MaxContentKeyLength];
        var length = IndexRecords.WriteContentKey(digest, key);
        Delete(key[..length]);
    }

    public async ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag)
    {
        var value = await GetAsync(TagKey(upstream, repository, tag)).ConfigureAwait(false);
        return value is not null && IndexRecords.TryReadTagValue(value, out var record) ? record : null;
    }

    public void PutTag(string upstream, string repository, string tag, TagRecord record) =>
        Upsert(TagKey(upstream, repository, tag), IndexRecords.TagValue(record));

    public void DeleteTag(string upstream, string repository, string tag) => Delete(TagKey(upstream, repository, tag));

    /// <summary>Reads a named pair of counters (totals kept across restarts).</summary>
    public async ValueTask<(long First, long Second)?> GetStateAsync(string name)
    {
        var value = await GetAsync(IndexRecords.StateKey(name)).ConfigureAwait(false);
        return value is { Length: 17 } && value[0] == 1
            ? (BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(1)), BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(9)))
            : null;
    }

    /// <summary>Writes a named pair of counters. Not a change of its own: it is saved with the next checkpoint.</summary>
    public void PutState(string name, long first, long second)
    {
        Span<byte> value = stackalloc byte[17];
        value[0] = 1;
        BinaryPrimitives.WriteInt64LittleEndian(value[1..], first);
        BinaryPrimitives.WriteInt64LittleEndian(value[9..], second);
        Upsert(IndexRecords.StateKey(name), value, counted: false);
    }

    private static byte[] TagKey(string upstream, string repository, string tag)
    {
        var key = new byte[IndexRecords.TagKeyLength(upstream, repository, tag)];
        IndexRecords.WriteTagKey(upstream, repository, tag, key);
        return key;
    }

    private async ValueTask<byte[]?> GetAsync(byte[] key)
    {
        var session = Rent();
        try
        {
            SpanByte input = default;
            byte[] output = null!;
            var status = session.Inner.Read(key, ref input, ref output, Empty.Default);
            if (status.IsPending)
            {
                // The record is on disk: FASTER keeps its own copy of the key for the pending read.
                using var outputs = await session.Inner.CompletePendingWithOutputsAsync().ConfigureAwait(false);
                while (outputs.Next())
                {
                    ref var completed = ref outputs.Current;
                    if (completed.Status.Found)
                    {
                        return completed.Output;
                    }
                }

                return null;
            }

            return status.Found ? output : null;
        }
        finally
        {
            Return(session);
        }
    }

    private void Upsert(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, bool counted = true)
    {
        if (WriteDropped())
        {
            return;
        }

        var session = Rent();
        try
        {
            session.Inner.Upsert(key, value, Empty.Default);
            if (counted)
            {
                Interlocked.Increment(ref _changes);
            }
        }
        finally
        {
            Return(session);
        }
    }

    private void Delete(ReadOnlySpan<byte> key)
    {
        if (WriteDropped())
        {
            return;
        }

        var session = Rent();
        try
        {
            session.Inner.Delete(key, Empty.Default);
            Interlocked.Increment(ref _changes);
        }
        finally
        {
            Return(session);
        }
    }

    private bool WriteDropped()
    {
        if (!_writeFailure.HasFailed)
        {
            return false;
        }

        Interlocked.Increment(ref _writesDropped);
        return true;
    }

    /// <summary>
    /// Writes a checkpoint when anything changed since the last one: the log only (cheap; recovery replays it onto
    /// the last index checkpoint), or <paramref name="full"/> with the hash index too. The first checkpoint of a new
    /// index is always full: log checkpoints need an index checkpoint under them.
    /// </summary>
    public async Task CheckpointAsync(bool full, CancellationToken cancellationToken)
    {
        full |= !Volatile.Read(ref _hasIndexCheckpoint);
        var changes = Interlocked.Read(ref _changes);
        if (changes == Interlocked.Read(ref _checkpointedChanges) && !full)
        {
            return;
        }

        if (_writeFailure.HasFailed)
        {
            return; // It would wait for a flush that never completes.
        }

        // Everything below the tail as the checkpoint starts is on disk once it completes (a fold-over checkpoint
        // flushes the log to its own end, which is at or past this): that is the part the seal can cover.
        var flushedBy = _store.Log.TailAddress;
        bool success;
        using (var stopped = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _writeFailure.Token))
        {
            try
            {
                (success, _) = full
                    ? await _store.TakeFullCheckpointAsync(CheckpointType.FoldOver, stopped.Token).ConfigureAwait(false)
                    : await _store.TakeHybridLogCheckpointAsync(CheckpointType.FoldOver, cancellationToken: stopped.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_writeFailure.HasFailed && !cancellationToken.IsCancellationRequested)
            {
                return; // A flush failed under the checkpoint: it cannot complete.
            }
        }

        if (success)
        {
            IndexSeal.Write(_directory, LogFileName, SegmentBits, _store.Log.BeginAddress, flushedBy);
            Interlocked.Exchange(ref _checkpointedChanges, changes);
            Volatile.Write(ref _hasIndexCheckpoint, _hasIndexCheckpoint || full);
        }
    }

    /// <summary>The final checkpoint of a clean stop, and the mark that says the index agrees with the files.</summary>
    public async Task CloseCleanlyAsync(CancellationToken cancellationToken)
    {
        if (_writeFailure.HasFailed)
        {
            // No checkpoint holds what was dropped: the next start rebuilds the index from the files.
            Log.NotClosedCleanly(_logger, _directory, WritesDropped);
            return;
        }

        await CheckpointAsync(full: true, cancellationToken).ConfigureAwait(false);
        await File.WriteAllBytesAsync(Path.Combine(_directory, CleanMarker), [], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether the log has grown to twice what it held after the last compaction (and past
    /// <paramref name="minimumBytes"/>): then rewriting the live records at the tail roughly halves it.
    /// </summary>
    public bool NeedsCompaction(long minimumBytes) => LogBytes > Math.Max(minimumBytes, 2 * Interlocked.Read(ref _sizeAfterCompaction));

    /// <summary>
    /// <see cref="Compact"/> on a thread of its own (FASTER's compaction is synchronous I/O, kept off the threads that
    /// serve requests), with a failure (a full or failing disk: compaction writes to the log) as an outcome: the index
    /// stays usable and only keeps its longer log.
    /// </summary>
    public async Task<IndexCompaction> CompactAsync(bool wholeLog, CancellationToken cancellationToken)
    {
        var bytes = LogBytes;
        if (_writeFailure.HasFailed)
        {
            return new IndexCompaction(IndexCompactionOutcome.Failed, bytes, bytes, NotWritable);
        }

        try
        {
            // A write that fails meanwhile leaves the compaction waiting inside FASTER for good: it is not waited for.
            var (before, after) = await Task.Factory.StartNew(() => Compact(wholeLog), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
                .WaitAsync(_writeFailure.Token).ConfigureAwait(false);
            return new IndexCompaction(IndexCompactionOutcome.Compacted, before, after, Failure: null);
        }
        catch (OperationCanceledException) when (_writeFailure.HasFailed && !cancellationToken.IsCancellationRequested)
        {
            return new IndexCompaction(IndexCompactionOutcome.Failed, bytes, LogBytes, NotWritable);
        }
        catch (Exception ex) when (ex is FasterException or IOException)
        {
            return new IndexCompaction(IndexCompactionOutcome.Failed, bytes, LogBytes, ex.Message);
        }
    }

    private const string NotWritable = "a write of the index log to disk failed; the index takes no writes until the next start";

    /// <summary>
    /// Copies the live records of the immutable part of the log to its tail and drops the rest from disk
    /// (FASTER's lookup compaction: memory stays bounded). With <paramref name="wholeLog"/> the mutable tail is made
    /// immutable first (flushed), so that afterwards every key has one version in the log. Synchronous: run it off
    /// the request path. Returns the log bytes before and after.
    /// </summary>
    public (long Before, long After) Compact(bool wholeLog = false)
    {
        using var scope = _logGate.EnterScope();
        var before = LogBytes;
        if (wholeLog)
        {
            _store.Log.ShiftReadOnlyAddress(_store.Log.TailAddress, wait: true);
        }

        var until = _store.Log.SafeReadOnlyAddress;
        if (until > _store.Log.BeginAddress)
        {
            using var session = _store.For(new Functions()).NewSession<Functions>();
            session.Compact(until, CompactionType.Lookup);
            _store.Log.Truncate();
            Interlocked.Increment(ref _changes);
        }

        var after = LogBytes;
        Interlocked.Exchange(ref _sizeAfterCompaction, after);
        return (before, after);
    }

    /// <summary>
    /// Calls <paramref name="visit"/> with every content record in the log, oldest first. A key can appear more
    /// than once (older versions that compaction has not removed yet), and a deleted key is reported with
    /// <c>deleted</c> set; callers that need the current state read the key again. Synchronous: run it off the
    /// request path. Memory: one page buffer.
    /// </summary>
    public long ScanContent<TVisitor>(ref TVisitor visit) where TVisitor : struct, IContentVisitor
    {
        using var scope = _logGate.EnterScope();
        var records = 0L;
        using var iterator = _store.Log.Scan(_store.Log.BeginAddress, _store.Log.TailAddress);
        while (iterator.GetNext(out var info))
        {
            ref var key = ref iterator.GetKey();
            var keySpan = key.AsReadOnlySpan();
            if (keySpan.Length == 0 || keySpan[0] != IndexRecords.ContentKeyKind)
            {
                continue;
            }

            records++;
            if (info.Tombstone)
            {
                visit.Visit(keySpan, deleted: true, size: 0, lastAccessMilliseconds: 0);
            }
            else if (IndexRecords.TryReadContentAccess(iterator.GetValue().AsReadOnlySpan(), out var size, out var lastAccess))
            {
                visit.Visit(keySpan, deleted: false, size, lastAccess);
            }
        }

        return records;
    }

    private Session Rent() => _sessions.TryTake(out var session) ? session : new Session(_store.For(new Functions()).NewSession<Functions>());

    private void Return(Session session) => _sessions.Add(session);

    public void Dispose()
    {
        while (_sessions.TryTake(out var session))
        {
            session.Inner.Dispose();
        }

        _store.Dispose();
        _settings.Dispose();
    }

    /// <summary>Set once, from the device's I/O completion, when a write of the log fails.</summary>
    private sealed class WriteFailure(string directory, ILogger logger)
    {
        private readonly CancellationTokenSource _failed = new();
        private int _hasFailed;

        public bool HasFailed => Volatile.Read(ref _hasFailed) != 0;

        /// <summary>Cancelled when a write fails: what waits for FASTER to flush stops waiting.</summary>
        public CancellationToken Token => _failed.Token;

        /// <summary>Called by the device at each failed write; the first one counts.</summary>
        public void Fail(uint errorCode)
        {
            if (Interlocked.Exchange(ref _hasFailed, 1) != 0)
            {
                return;
            }

            Log.WriteFailed(logger, directory, errorCode);
            // Not on the I/O completion thread: the waits it ends resume elsewhere.
            _ = _failed.CancelAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2008, LogLevel.Error, "Cache index in {Directory}: a write of its log to disk failed (error {ErrorCode}); the index takes no more writes until the next start, which rebuilds it from the files. Cached content is still served")]
        public static partial void WriteFailed(ILogger logger, string directory, uint errorCode);

        [LoggerMessage(2009, LogLevel.Warning, "Cache index in {Directory} is not closed as clean: {Dropped} writes were dropped after a failed write; the next start rebuilds it from the files")]
        public static partial void NotClosedCleanly(ILogger logger, string directory, long dropped);

        [LoggerMessage(2001, LogLevel.Warning, "Cache index in {Directory} could not be recovered and is rebuilt from the files: {Reason}")]
        public static partial void IndexDiscarded(ILogger logger, string directory, string reason);

        [LoggerMessage(2006, LogLevel.Warning, "Cache index in {Directory} did not recover from its checkpoint and is rebuilt from the files: {Reason}")]
        public static partial void RecoveryFailed(ILogger logger, string directory, string reason);
    }
}

/// <summary>Receives content records from <see cref="CacheIndex.ScanContent"/>.</summary>
internal interface IContentVisitor
{
    void Visit(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccessMilliseconds);
}

/// <summary>The index's sizes, fixed at start.</summary>
internal readonly record struct IndexSettings(long IndexSizeBytes, long LogMemoryBytes);
