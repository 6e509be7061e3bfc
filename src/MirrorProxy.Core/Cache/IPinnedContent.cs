namespace MirrorProxy.Cache;

/// <summary>Content that must never be evicted.</summary>
internal interface IPinnedContent
{
    bool IsPinned(string digest);

    /// <summary>Every pinned digest now (a snapshot: grows with what is pinned, never with the cache).</summary>
    IReadOnlyCollection<string> PinnedDigests { get; }

    /// <summary>Reads the pins again from where they are kept (replicas sharing a store may have changed them).</summary>
    Task ReloadAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
