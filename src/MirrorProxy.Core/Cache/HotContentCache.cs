using System.Collections.Concurrent;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// Small content (manifests, configs, small layers) kept in memory within a byte budget, so hot requests are
/// answered without opening a file. Content enters only after it was hashed against its digest. When the budget is
/// exceeded, the least recently used are dropped down to nine tenths of it. The files stay the truth: this only
/// saves reading them, and its size is bounded by the budget, not by the cache.
/// </summary>
internal sealed class HotContentCache
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly long _budget;
    private readonly Lock _trimGate = new();
    private long _bytes;
    private long _clock;

    public HotContentCache(long budget, long maxObjectSize)
    {
        _budget = budget;
        MaxObjectSize = budget <= 0 ? -1 : Math.Min(maxObjectSize, budget);
    }

    /// <summary>Objects larger than this are never held; -1 when the cache is off.</summary>
    public long MaxObjectSize { get; }

    public long Bytes => Interlocked.Read(ref _bytes);

    public sealed class Entry(byte[] content, ContentEntry entry)
    {
        public byte[] Content { get; } = content;

        public ContentEntry Info { get; } = entry;

        public long LastUse;
    }

    public bool TryGet(string digest, out Entry entry)
    {
        if (_entries.TryGetValue(digest, out entry!))
        {
            entry.LastUse = Interlocked.Increment(ref _clock);
            return true;
        }

        return false;
    }

    public void Add(string digest, byte[] content, ContentEntry entry)
    {
        if (content.Length > MaxObjectSize || !_entries.TryAdd(digest, new Entry(content, entry) { LastUse = Interlocked.Increment(ref _clock) }))
        {
            return;
        }

        if (Interlocked.Add(ref _bytes, content.Length) > _budget)
        {
            Trim();
        }
    }

    /// <summary>Updates what is known of an entry held (its last access, its kind).</summary>
    public void Refresh(string digest, ContentEntry entry)
    {
        if (_entries.TryGetValue(digest, out var held))
        {
            _entries.TryUpdate(digest, new Entry(held.Content, entry) { LastUse = held.LastUse }, held);
        }
    }

    public void Remove(string digest)
    {
        if (_entries.TryRemove(digest, out var entry))
        {
            Interlocked.Add(ref _bytes, -entry.Content.Length);
        }
    }

    private void Trim()
    {
        if (!_trimGate.TryEnter())
        {
            return; // another thread is trimming
        }

        try
        {
            var target = _budget - _budget / 10;
            // ToArray is the dictionary's own snapshot: LINQ would copy it by Count then CopyTo, which throws when
            // another request adds content in between.
            foreach (var (digest, _) in _entries.ToArray().OrderBy(e => e.Value.LastUse))
            {
                if (Bytes <= target)
                {
                    break;
                }

                Remove(digest);
            }
        }
        finally
        {
            _trimGate.Exit();
        }
    }
}
