using System.Buffers.Binary;
using System.Collections;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>
/// The oldest content records of one index scan whose sizes reach a target: what an eviction pass deletes.
/// <para>
/// Built for a scan of millions of records: a record costs nothing unless it is older than what is held, and a held
/// one is a 48-byte struct keyed by the raw hash in the key (no digest string, no object per member); the digest is
/// formatted only for a victim, when it is deleted. The newest held record sits on top of an indexed max-heap, so it
/// is dropped as soon as the others reach the target, and a later version of a held key (the log keeps old versions
/// until compaction) replaces it in place; a deletion removes it. Memory is bounded by
/// <see cref="MemoryBudget"/> (<see cref="BytesPerCandidate"/> each), whatever the size of the cache; when the
/// target needs more candidates than that, the set holds the oldest ones that fit and the caller scans again.
/// </para>
/// <para>
/// The result is exactly the oldest records that reach the target when each key has one version in the log. A key
/// used or deleted since the last compaction has older versions before its current one: while the scan has not
/// reached the current one, the old version may hold a place, and records the heap dropped meanwhile are not seen
/// again, so the pass may take a slightly newer object than the oldest, or fall short of the target: right after
/// a pass, whose deletions follow the records of its victims, the next scan can find almost nothing. Keeping every
/// dropped record to undo that would make memory grow with the cache; instead <see cref="FellShort"/> says when it
/// happened, and the caller compacts the log (one version per key) and scans again.
/// </para>
/// </summary>
internal sealed class EvictionCandidates
{
    /// <summary>Most memory one scan holds for its candidates.</summary>
    internal const long MemoryBudget = 16L << 20;

    /// <summary>What one candidate costs: its entry (48 bytes), its place in the heap (8) and its entry in the key map (36).</summary>
    internal const int BytesPerCandidate = 96;

    /// <summary>Most candidates <see cref="MemoryBudget"/> holds (174,762): a tenth of the budget of a cache of 1,700,000 objects.</summary>
    internal const int MaxCandidates = (int)(MemoryBudget / BytesPerCandidate);

    private const int Sha256KeyLength = 34;
    private const int Sha512KeyLength = 66;

    private readonly long _target;
    private readonly int _maxCount;
    private readonly long _protectedSince;
    private readonly IReadOnlySet<(ulong, ulong)> _pinned;
    private readonly Dictionary<(ulong, ulong), int> _slots = [];

    // Sha-512 keys are 64 bytes of hash: the 32 the entry does not hold, by id (rare).
    private Dictionary<(ulong, ulong), (ulong, ulong, ulong, ulong)>? _longTails;
    private Entry[] _entries = new Entry[256];
    private int[] _heapPosition = new int[256];
    private int[] _heap = new int[256];
    private int _count;
    private long _bytes;
    private bool _superseded;
    private bool _passedOver;

    /// <summary>A candidate: the hash (the first 32 bytes; the id is the first 16), its size and its last access.</summary>
    private struct Entry
    {
        public ulong Id0;
        public ulong Id1;
        public ulong Rest0;
        public ulong Rest1;
        public long LastAccess;
        public long Size;
    }

    /// <param name="target">Bytes the candidates must add up to.</param>
    /// <param name="protectedSince">Records last used after this (Unix milliseconds) are not candidates.</param>
    /// <param name="pinned">Ids (<see cref="IdOf(Digest)"/>) of content never to evict.</param>
    /// <param name="maxCount">Most candidates held; <see cref="MaxCandidates"/> but in tests.</param>
    public EvictionCandidates(long target, long protectedSince, IReadOnlySet<(ulong, ulong)> pinned, int maxCount = MaxCandidates)
    {
        _target = target;
        _protectedSince = protectedSince;
        _pinned = pinned;
        _maxCount = maxCount;
    }

    /// <summary>Candidates held.</summary>
    public int Count => _count;

    /// <summary>Bytes the candidates held add up to.</summary>
    public long Bytes => _bytes;

    /// <summary>
    /// Whether the candidates fall short of the target while a held candidate was superseded (a later version or
    /// its deletion) after the scan had passed over records for want of room: those may have been needed.
    /// </summary>
    public bool FellShort => _bytes < _target && _superseded && _passedOver;

    /// <summary>The id a content key of <paramref name="digest"/> has here: the first 16 bytes of its hash.</summary>
    public static (ulong, ulong) IdOf(Digest digest)
    {
        Span<byte> key = stackalloc byte[IndexRecords.MaxContentKeyLength];
        var length = IndexRecords.WriteContentKey(digest, key);
        return length >= Sha256KeyLength ? Id(key) : default;
    }

    private static (ulong, ulong) Id(ReadOnlySpan<byte> key) =>
        (BinaryPrimitives.ReadUInt64LittleEndian(key[2..]), BinaryPrimitives.ReadUInt64LittleEndian(key[10..]));

    /// <summary>One content record of the scan, oldest first: a version of a key, or its deletion.</summary>
    public void Offer(ReadOnlySpan<byte> key, bool deleted, long size, long lastAccess)
    {
        if (key.Length is not (Sha256KeyLength or Sha512KeyLength))
        {
            return;
        }

        var id = Id(key);
        if (_slots.Remove(id, out var slot))
        {
            // A newer version of a candidate: it was deleted, or its access moved on.
            RemoveAt(slot);
            _superseded = true;
            if (deleted)
            {
                return;
            }
        }
        else if (deleted)
        {
            return;
        }

        if (lastAccess > _protectedSince || size < 0 || _pinned.Contains(id))
        {
            return;
        }

        if (_count > 0 && (_bytes >= _target || _count >= _maxCount) && lastAccess >= _entries[_heap[0]].LastAccess)
        {
            _passedOver = true;
            return;
        }

        Add(id, key, size, lastAccess);

        // Drop the newest while the others still reach the target (or there are too many).
        while (_count > 0 && (_bytes - _entries[_heap[0]].Size >= _target || _count > _maxCount))
        {
            var newest = _heap[0];
            _slots.Remove((_entries[newest].Id0, _entries[newest].Id1));
            RemoveAt(newest);
            _passedOver = true;
        }
    }

    private void Add((ulong, ulong) id, ReadOnlySpan<byte> key, long size, long lastAccess)
    {
        if (_count == _entries.Length)
        {
            var capacity = (int)Math.Min(2L * _entries.Length, _maxCount + 1L);
            Array.Resize(ref _entries, capacity);
            Array.Resize(ref _heapPosition, capacity);
            Array.Resize(ref _heap, capacity);
        }

        var slot = _count++;
        _entries[slot] = new Entry
        {
            Id0 = id.Item1,
            Id1 = id.Item2,
            Rest0 = BinaryPrimitives.ReadUInt64LittleEndian(key[18..]),
            Rest1 = BinaryPrimitives.ReadUInt64LittleEndian(key[26..]),
            LastAccess = lastAccess,
            Size = size,
        };
        _slots[id] = slot;
        if (key.Length == Sha512KeyLength)
        {
            (_longTails ??= [])[id] = (BinaryPrimitives.ReadUInt64LittleEndian(key[34..]), BinaryPrimitives.ReadUInt64LittleEndian(key[42..]),
                BinaryPrimitives.ReadUInt64LittleEndian(key[50..]), BinaryPrimitives.ReadUInt64LittleEndian(key[58..]));
        }

        _bytes += size;
        _heap[slot] = slot;
        _heapPosition[slot] = slot;
        SiftUp(slot);
    }

    /// <summary>Removes the entry in <paramref name="slot"/> (already gone from the key map) and moves the last entry into its place.</summary>
    private void RemoveAt(int slot)
    {
        ref var removed = ref _entries[slot];
        _bytes -= removed.Size;
        _longTails?.Remove((removed.Id0, removed.Id1));

        // Out of the heap: the last heap element takes its place and moves up or down.
        var position = _heapPosition[slot];
        var lastPosition = _count - 1;
        if (position != lastPosition)
        {
            var moved = _heap[lastPosition];
            _heap[position] = moved;
            _heapPosition[moved] = position;
            SiftDown(position);
            SiftUp(_heapPosition[moved]);
        }

        // Entries stay dense: the last one takes the freed slot.
        var last = _count - 1;
        if (slot != last)
        {
            _entries[slot] = _entries[last];
            var at = _heapPosition[last];
            _heap[at] = slot;
            _heapPosition[slot] = at;
            _slots[(_entries[slot].Id0, _entries[slot].Id1)] = slot;
        }

        _count--;
    }

    private bool Newer(int a, int b) => _entries[a].LastAccess > _entries[b].LastAccess;

    private void SiftUp(int position)
    {
        var slot = _heap[position];
        while (position > 0)
        {
            var parent = (position - 1) / 2;
            if (!Newer(slot, _heap[parent]))
            {
                break;
            }

            _heap[position] = _heap[parent];
            _heapPosition[_heap[position]] = position;
            position = parent;
        }

        _heap[position] = slot;
        _heapPosition[slot] = position;
    }

    private void SiftDown(int position)
    {
        var count = _count - 1; // the caller is removing the last heap element
        var slot = _heap[position];
        while (true)
        {
            var child = 2 * position + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && Newer(_heap[child + 1], _heap[child]))
            {
                child++;
            }

            if (!Newer(_heap[child], slot))
            {
                break;
            }

            _heap[position] = _heap[child];
            _heapPosition[_heap[position]] = position;
            position = child;
        }

        _heap[position] = slot;
        _heapPosition[slot] = position;
    }

    /// <summary>The candidates, oldest first. The set is spent: it gives its memory to the victims.</summary>
    public EvictionVictims OldestFirst()
    {
        var fellShort = FellShort;
        var entries = _entries.AsSpan(0, _count);
        entries.Sort(static (a, b) => a.LastAccess.CompareTo(b.LastAccess));
        Dictionary<(ulong, ulong), (ulong, ulong, ulong, ulong)>? tails = _longTails;
        var victims = new Victim[_count];
        for (var i = 0; i < entries.Length; i++)
        {
            victims[i] = new Victim(entries[i].Id0, entries[i].Id1, entries[i].Rest0, entries[i].Rest1, entries[i].Size);
        }

        _entries = [];
        _heap = [];
        _heapPosition = [];
        _slots.Clear();
        _count = 0;
        return new EvictionVictims(victims, tails, fellShort);
    }

    internal readonly record struct Victim(ulong Id0, ulong Id1, ulong Rest0, ulong Rest1, long Size);
}

/// <summary>An eviction pass's victims, oldest first; each digest is formatted when it is read.</summary>
internal sealed class EvictionVictims(EvictionCandidates.Victim[] victims, Dictionary<(ulong, ulong), (ulong, ulong, ulong, ulong)>? longTails, bool fellShort)
    : IReadOnlyList<(Digest Digest, long Size)>
{
    public int Count => victims.Length;

    /// <summary>See <see cref="EvictionCandidates.FellShort"/>.</summary>
    public bool FellShort => fellShort;

    public (Digest Digest, long Size) this[int index]
    {
        get
        {
            var victim = victims[index];
            Span<byte> hash = stackalloc byte[64];
            BinaryPrimitives.WriteUInt64LittleEndian(hash, victim.Id0);
            BinaryPrimitives.WriteUInt64LittleEndian(hash[8..], victim.Id1);
            BinaryPrimitives.WriteUInt64LittleEndian(hash[16..], victim.Rest0);
            BinaryPrimitives.WriteUInt64LittleEndian(hash[24..], victim.Rest1);
            if (longTails is not null && longTails.TryGetValue((victim.Id0, victim.Id1), out var tail))
            {
                BinaryPrimitives.WriteUInt64LittleEndian(hash[32..], tail.Item1);
                BinaryPrimitives.WriteUInt64LittleEndian(hash[40..], tail.Item2);
                BinaryPrimitives.WriteUInt64LittleEndian(hash[48..], tail.Item3);
                BinaryPrimitives.WriteUInt64LittleEndian(hash[56..], tail.Item4);
                // Always well formed: 64 bytes of hash.
                Digest.TryParse("sha512:" + Convert.ToHexStringLower(hash), out var sha512);
                return (sha512, victim.Size);
            }

            return (Digest.FromSha256Hash(hash[..32]), victim.Size);
        }
    }

    public IEnumerator<(Digest Digest, long Size)> GetEnumerator()
    {
        for (var i = 0; i < victims.Length; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
