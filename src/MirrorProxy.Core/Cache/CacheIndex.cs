using System.Collections.Concurrent;
using FASTER.core;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Cache;

/// <summary>
/// The cache's index in FASTER (<c>FasterKV&lt;SpanByte, SpanByte&gt;</c>, values inline in the hybrid log, memory
/// budget shrunk far below FASTER's defaults). It is only a cache of what the files say: when it cannot be
/// recovered it is wiped and rebuilt from them, and every miss is checked against the files.
/// </summary>
internal sealed partial class CacheIndex : IDisposable
{
    private readonly FasterKVSettings<SpanByte, SpanByte> _settings;
    private readonly FasterKV<SpanByte, SpanByte> _store;
    private readonly ConcurrentBag<Session> _sessions = [];
    private long _changes;
    private long _checkpointedChanges;

    private sealed class Functions : SpanByteFunctions_ByteArrayOutput<Empty>;

    private sealed class Session(ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, Functions> inner)
    {
        public ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, Functions> Inner { get; } = inner;
    }

    private CacheIndex(FasterKVSettings<SpanByte, SpanByte> settings, FasterKV<SpanByte, SpanByte> store, bool recovered)
    {
        _settings = settings;
        _store = store;
        Recovered = recovered;
    }

    /// <summary>True when the store came back from a checkpoint; false when it started empty and must be filled from the files.</summary>
    public bool Recovered { get; }

    /// <summary>Opens the index in <paramref name="directory"/>, discarding it when recovery fails.</summary>
    public static CacheIndex Open(string directory, CacheOptions options, ILogger logger)
    {
        var checkpoints = Path.Combine(directory, "checkpoints");
        var hasCheckpoint = Directory.Exists(checkpoints) && Directory.EnumerateFileSystemEntries(checkpoints).Any();
        try
        {
            return Create(directory, options, recover: hasCheckpoint);
        }
        catch (Exception ex) when (ex is FasterException or IOException or InvalidOperationException or ArgumentException or IndexOutOfRangeException or NullReferenceException)
        {
            // FASTER throws assorted exceptions on damaged checkpoints. The files are the truth: start over.
            Log.IndexDiscarded(logger, directory, ex.Message);
            Directory.Delete(directory, recursive: true);
            return Create(directory, options, recover: false);
        }
    }

    private static CacheIndex Create(string directory, CacheOptions options, bool recover)
    {
        Directory.CreateDirectory(directory);
        var settings = new FasterKVSettings<SpanByte, SpanByte>(directory, deleteDirOnDispose: false, logger: null)
        {
            IndexSize = options.IndexSizeBytes,
            PageSize = 1L << 16,
            MemorySize = options.LogMemoryBytes,
            SegmentSize = 1L << 24,
            MutableFraction = 0.5,
            RemoveOutdatedCheckpoints = true,
            TryRecoverLatest = recover,
        };

        try
        {
            var store = new FasterKV<SpanByte, SpanByte>(settings);
            return new CacheIndex(settings, store, recover && store.RecoveredVersion > 1);
        }
        catch
        {
            settings.Dispose();
            throw;
        }
    }

    /// <summary>Reads a value; null when the key is absent.</summary>
    public async ValueTask<byte[]?> GetAsync(ReadOnlyMemory<byte> key)
    {
        var session = Rent();
        try
        {
            SpanByte input = default;
            byte[] output = null!;
            var status = session.Inner.Read(key.Span, ref input, ref output, Empty.Default);
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

    public void Upsert(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var session = Rent();
        try
        {
            session.Inner.Upsert(key, value, Empty.Default);
            Interlocked.Increment(ref _changes);
        }
        finally
        {
            Return(session);
        }
    }

    public void Delete(ReadOnlySpan<byte> key)
    {
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

    /// <summary>Writes a checkpoint when anything changed since the last one.</summary>
    public async Task CheckpointAsync(CancellationToken cancellationToken)
    {
        var changes = Interlocked.Read(ref _changes);
        if (changes == Interlocked.Read(ref _checkpointedChanges))
        {
            return;
        }

        var (success, _) = await _store.TakeFullCheckpointAsync(CheckpointType.FoldOver, cancellationToken).ConfigureAwait(false);
        if (success)
        {
            Interlocked.Exchange(ref _checkpointedChanges, changes);
        }
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

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Warning, "Cache index in {Directory} could not be recovered and is rebuilt from the files: {Reason}")]
        public static partial void IndexDiscarded(ILogger logger, string directory, string reason);
    }
}
