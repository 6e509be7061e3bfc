namespace MirrorProxy.Resilience;

/// <summary>The island switch at start. Key <c>MirrorProxy:Offline</c>.</summary>
public sealed class OfflineOptions
{
    /// <summary>Never dial an upstream; serve from the cache only. Can be flipped at run time (admin endpoint).</summary>
    public bool Offline { get; set; }
}
