using System.Text.Json;
using System.Text.Json.Serialization;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.WarmUp;

/// <summary>A named list of images and every digest reachable from them when the set was last written.</summary>
internal sealed record PinSet(string Name, IReadOnlyList<string> Images, string Platforms, DateTimeOffset UpdatedAt, IReadOnlyList<string> Digests);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(PinSet))]
internal sealed partial class PinJsonContext : JsonSerializerContext;

/// <summary>
/// Pin sets, one JSON file each under <c>pins/</c> (written atomically), and the union of their digests, which
/// eviction never touches. Replacing a set drops what it no longer lists.
/// </summary>
internal sealed partial class PinStore : IPinnedContent
{
    private readonly ContentStore _store;
    private readonly string _directory;
    private readonly Lock _gate = new();
    private readonly ILogger<PinStore> _logger;
    private Dictionary<string, PinSet> _sets = new(StringComparer.Ordinal);
    private HashSet<string> _pinned = new(StringComparer.Ordinal);

    public PinStore(MirrorCache cache, ILogger<PinStore> logger)
    {
        _store = cache.Store;
        _logger = logger;
        _directory = Path.Combine(cache.Store.Root, "pins");
        Directory.CreateDirectory(_directory);
        Load();
    }

    public IReadOnlyCollection<PinSet> Sets => Volatile.Read(ref _sets).Values;

    public bool IsPinned(string digest) => Volatile.Read(ref _pinned).Contains(digest);

    public PinSet? Get(string name) => Volatile.Read(ref _sets).GetValueOrDefault(name);

    /// <summary><c>[a-z0-9][a-z0-9._-]{0,63}</c>: a pin set name is also a file name.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && (char.IsAsciiLetterLower(name[0]) || char.IsAsciiDigit(name[0]))
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-');

    public async Task PutAsync(PinSet set, CancellationToken cancellationToken)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(set, PinJsonContext.Default.PinSet);
        await _store.WriteAtomicallyAsync(PathOf(set.Name), bytes, cancellationToken).ConfigureAwait(false);
        Update(sets => sets[set.Name] = set);
    }

    public bool Delete(string name)
    {
        if (Get(name) is null)
        {
            return false;
        }

        File.Delete(PathOf(name));
        Update(sets => sets.Remove(name));
        return true;
    }

    /// <summary>Digests of a set that are not in the cache.</summary>
    public int CountMissing(PinSet set) => set.Digests.Count(d => !Digest.TryParse(d, out var digest) || !_store.TryStat(digest, out _));

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

    private void Load()
    {
        var sets = new Dictionary<string, PinSet>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(_directory, "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize(File.ReadAllBytes(file), PinJsonContext.Default.PinSet) is { } set && IsValidName(set.Name))
                {
                    sets[set.Name] = set;
                }
            }
            catch (JsonException ex)
            {
                // A pin file is written atomically; a damaged one was damaged on disk. Keep it for inspection.
                Log.PinSetUnreadable(_logger, file, ex.Message);
            }
        }

        Update(current =>
        {
            foreach (var (name, set) in sets)
            {
                current[name] = set;
            }
        });
    }

    private string PathOf(string name) => Path.Combine(_directory, name + ".json");

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Error, "Pin set file {File} cannot be read and pins nothing: {Reason}")]
        public static partial void PinSetUnreadable(ILogger logger, string file, string reason);
    }
}
