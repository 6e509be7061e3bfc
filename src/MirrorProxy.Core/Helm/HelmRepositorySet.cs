using System.Collections.Frozen;

namespace MirrorProxy.Helm;

/// <summary>Every configured Helm repository, by name.</summary>
internal sealed class HelmRepositorySet : IDisposable
{
    private readonly FrozenDictionary<string, HelmRepository> _byName;

    public HelmRepositorySet(IEnumerable<HelmRepository> repositories)
    {
        All = [.. repositories];
        _byName = All.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);
    }

    public IReadOnlyList<HelmRepository> All { get; }

    public bool TryGet(string name, out HelmRepository repository) => _byName.TryGetValue(name, out repository!);

    public void Dispose()
    {
        foreach (var repository in All)
        {
            repository.Dispose();
        }
    }
}
