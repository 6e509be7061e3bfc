using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.WarmUp;

/// <summary>A named list of images and every digest reachable from them when the set was last written.</summary>
internal sealed record PinSet(string Name, IReadOnlyList<string> Images, string Platforms, DateTimeOffset UpdatedAt, IReadOnlyList<string> Digests)
{
    /// <summary>The selection rules the images were resolved from, when they were (absent from older pin files).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Selection.SelectionRecord? Selection { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(PinSet))]
internal sealed partial class PinJsonContext : JsonSerializerContext;

/// <summary>
/// Pin sets, one document each under <c>pins/</c>, and the union of their digests, which eviction never touches.
/// Replacing a set drops what it no longer lists. How many pinned objects are missing from the cache is counted
/// from the store itself (the truth), at most every few seconds per set, so metrics and readiness can ask often.
/// Memory grows with what is pinned, never with the cache.
/// </summary>
internal sealed partial class PinStore : IPinnedContent, IHostedService
{
    private static readonly TimeSpan MissingCountLifetime = TimeSpan.FromSeconds(2);

    private readonly MirrorCache _cache;
    private readonly IMetadataStore _metadata;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly ILogger<PinStore> _logger;
    private readonly ConcurrentDictionary<string, (DateTimeOffset At, int Missing)> _missing = new(StringComparer.Ordinal);
    private Dictionary<string, PinSet> _sets = new(StringComparer.Ordinal);
    private HashSet<string> _pinned = new(StringComparer.Ordinal);

    /// <summary>How often replicas sharing a store read the pin sets again (another replica may have changed them).</summary>
    internal static readonly TimeSpan SharedReloadInterval = TimeSpan.FromSeconds(30);

    private readonly BackgroundWork _background;

    public PinStore(MirrorCache cache, BackgroundWork background, TimeProvider time, ILogger<PinStore> logger)
    {
        _cache = cache;
        _background = background;
        _metadata = cache.Metadata;
        _time = time;
        _logger = logger;
    }

    public IReadOnlyCollection<PinSet> Sets => Volatile.Read(ref _sets).Values;

    public bool IsPinned(string digest) => Volatile.Read(ref _pinned).Contains(digest);

    public IReadOnlyCollection<string> PinnedDigests => Volatile.Read(ref _pinned);

    public PinSet? Get(string name) => Volatile.Read(ref _sets).GetValueOrDefault(name);

    /// <summary><c>[a-z0-9][a-z0-9._-]{0,63}</c>: a pin set name is also a document name.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && (char.IsAsciiLetterLower(name[0]) || char.IsAsciiDigit(name[0]))
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-');

    public async Task<StorageStatus> PutAsync(PinSet set, CancellationToken cancellationToken)
    {
        var status = await _metadata.WriteAsync(MetadataKeys.Pin(set.Name), JsonSerializer.SerializeToUtf8Bytes(set, PinJsonContext.Default.PinSet), cancellationToken)
            .ConfigureAwait(false);
        if (status == StorageStatus.Ok)
        {
            _missing.TryRemove(set.Name, out _);
            Update(sets => sets[set.Name] = set);
        }

        return status;
    }

    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        if (Get(name) is null)
        {
            return false;
        }

        await _metadata.DeleteAsync(MetadataKeys.Pin(name), cancellationToken).ConfigureAwait(false);
        _missing.TryRemove(name, out _);
        Update(sets => sets.Remove(name));
        return true;
    }

    /// <summary>Digests of a set that the store does not hold (quarantined ones included), counted afresh when the last count is older than two seconds.</summary>
    public async ValueTask<int> CountMissingAsync(PinSet set, CancellationToken cancellationToken)
    {
        if (_missing.TryGetValue(set.Name, out var counted) && _time.GetUtcNow() - counted.At < MissingCountLifetime)
        {
            return counted.Missing;
        }

        var missing = 0;
        foreach (var value in set.Digests)
        {
            if (!Digest.TryParse(value, out var digest) || !await _cache.IsStoredAsync(digest, null, cancellationToken).ConfigureAwait(false))
            {
                missing++;
            }
        }

        _missing[set.Name] = (_time.GetUtcNow(), missing);
        return missing;
    }

    /// <summary>The last count for a set (for gauges, which cannot wait); -1 before the first count.</summary>
    public int LastMissing(PinSet set) => _missing.TryGetValue(set.Name, out var counted) ? counted.Missing : -1;

    private void Update(Action<Dictionary<string, PinSet>> change)
    {
        lock (_gate)
        {
            var sets = new Dictionary<string, PinSet>(_sets, StringComparer.Ordinal);
            change(sets);
            Volatile.Write(ref _pinned, sets.Values.SelectMany(s => s.Digests).ToHashSet(StringComparer.Ordinal));
            Volatile.Write(ref _sets, sets);
        }
    }

    /// <summary>
    /// Loads the pin sets before the mirror serves (eviction must know them from its first pass). Replicas sharing
    /// a store read them again every <see cref="SharedReloadInterval"/> while the shared store answers.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var sets = await LoadAsync(cancellationToken).ConfigureAwait(false);
        Update(current =>
        {
            foreach (var (name, set) in sets)
            {
                current[name] = set;
            }
        });

        if (_cache.Shared is { } shared)
        {
            _ = _background.Run("pin sets of the replicas", static async (s, stopping) =>
            {
                while (true)
                {
                    await Task.Delay(SharedReloadInterval, s.Time, stopping).ConfigureAwait(false);
                    if (s.Shared.IsReachable)
                    {
                        await s.Self.ReloadAsync(stopping).ConfigureAwait(false);
                    }
                }
            }, (Self: this, Shared: shared, Time: _time));
        }
    }

    /// <summary>Replaces the pin sets with those stored now (sets another replica deleted are dropped).</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken)
    {
        var sets = await LoadAsync(cancellationToken).ConfigureAwait(false);
        Update(current =>
        {
            current.Clear();
            foreach (var (name, set) in sets)
            {
                current[name] = set;
            }
        });
    }

    private async Task<Dictionary<string, PinSet>> LoadAsync(CancellationToken cancellationToken)
    {
        var sets = new Dictionary<string, PinSet>(StringComparer.Ordinal);
        await foreach (var name in _metadata.ListAsync(MetadataKeys.PinsPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (!name.EndsWith(".json", StringComparison.Ordinal))
            {
                continue;
            }

            var key = MetadataKeys.PinsPrefix + "/" + name;
            try
            {
                if (await _metadata.ReadAsync(key, 64 << 20, cancellationToken).ConfigureAwait(false) is { } document
                    && JsonSerializer.Deserialize(document, PinJsonContext.Default.PinSet) is { } set && IsValidName(set.Name))
                {
                    sets[set.Name] = set;
                }
            }
            catch (JsonException ex)
            {
                // A pin document is written atomically; a damaged one was damaged on disk. Keep it for inspection.
                Log.PinSetUnreadable(_logger, key, ex.Message);
            }
        }

        return sets;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Error, "Pin set {Key} cannot be read and pins nothing: {Reason}")]
        public static partial void PinSetUnreadable(ILogger logger, string key, string reason);
    }
}
