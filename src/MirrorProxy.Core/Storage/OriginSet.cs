namespace MirrorProxy.Storage;

/// <summary>Where a cached object came from, as far as access control cares.</summary>
/// <param name="Name">The upstream's name.</param>
/// <param name="IsPublic">Whether that upstream's content may be read by any client (an anonymous upstream).</param>
internal readonly record struct ContentOrigin(string Name, bool IsPublic);

/// <summary>
/// The private upstreams that have shown they hold an object, or none: then the object is public (an anonymous
/// upstream brought it, or showed it holds it). A private object is served only through the route of an
/// upstream in its set; another upstream's route must first show it holds the object too. Up to four upstreams
/// are remembered (inline, no allocation); a fifth has to show it again next time, which is safe.
/// </summary>
internal readonly record struct OriginSet(int Count, uint First, uint Second, uint Third, uint Fourth)
{
    public const int Capacity = 4;

    public static OriginSet Public => default;

    public bool IsPublic => Count == 0;

    public static OriginSet Of(string upstream) => new(1, IdOf(upstream), 0, 0, 0);

    public uint this[int i] => i switch
    {
        0 => First,
        1 => Second,
        2 => Third,
        3 => Fourth,
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    public bool Contains(string upstream)
    {
        var id = IdOf(upstream);
        for (var i = 0; i < Count; i++)
        {
            if (this[i] == id)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The set with <paramref name="upstream"/> added (unchanged when full or already in it).</summary>
    public OriginSet With(string upstream)
    {
        if (Contains(upstream) || Count == Capacity)
        {
            return this;
        }

        var id = IdOf(upstream);
        return Count switch
        {
            0 => new OriginSet(1, id, 0, 0, 0),
            1 => this with { Count = 2, Second = id },
            2 => this with { Count = 3, Third = id },
            _ => this with { Count = 4, Fourth = id },
        };
    }

    /// <summary>A stable 32-bit id of an upstream name (FNV-1a of its lower-case form).</summary>
    public static uint IdOf(string upstream)
    {
        var hash = 2166136261u;
        foreach (var c in upstream)
        {
            hash = (hash ^ char.ToLowerInvariant(c)) * 16777619u;
        }

        return hash;
    }

    public static OriginSet FromNames(IEnumerable<string> upstreams)
    {
        var set = Public;
        foreach (var upstream in upstreams)
        {
            set = set.With(upstream);
        }

        return set;
    }
}
