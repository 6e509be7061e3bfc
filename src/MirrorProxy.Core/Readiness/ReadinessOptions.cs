namespace MirrorProxy.Readiness;

/// <summary>What readiness requires. Keys directly under <c>MirrorProxy</c>.</summary>
public sealed class ReadinessOptions
{
    /// <summary>Whether /readyz also requires every pinned object to be in the cache.</summary>
    public bool ReadyRequiresPinnedContent { get; set; }
}
