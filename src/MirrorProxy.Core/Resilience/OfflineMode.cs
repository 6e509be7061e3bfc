namespace MirrorProxy.Resilience;

/// <summary>
/// The explicit island switch. While on, no upstream is dialed: every answer comes from the cache.
/// Set from configuration at start and flipped at run time through the admin endpoint.
/// </summary>
internal sealed class OfflineMode
{
    private volatile bool _enabled;

    public OfflineMode(bool enabled) => _enabled = enabled;

    public bool IsEnabled => _enabled;

    public void Set(bool enabled) => _enabled = enabled;
}
