namespace MirrorProxy.Status;

/// <summary>Everything the status page shows, read at one moment.</summary>
internal sealed record StatusSnapshot(
    DateTimeOffset TakenAt,
    SailVerdict Verdict,
    bool Offline,
    IReadOnlyList<UpstreamStatus> Upstreams,
    CacheStatus Cache,
    IReadOnlyList<PinSetStatus> PinSets,
    IReadOnlyList<PullFailure> RecentFailures,
    long FailuresSinceStart,
    WarmUpStatus? LastWarmUp);

/// <summary>"Can we sail?": yes when every pin set is complete and the cache can be written with disk to spare.</summary>
internal sealed record SailVerdict(bool CanSail, IReadOnlyList<string> Reasons);

internal sealed record UpstreamStatus(string Name, string Url, string State);

internal sealed record CacheStatus(long UsedBytes, long Objects, long? BudgetBytes, long FreeDiskBytes, long MinFreeDiskBytes, bool Writable);

/// <summary>A pin set and what of it the cache lacks; <c>IncompleteImages</c> is bounded, <c>MoreIncomplete</c> says whether more exist.</summary>
internal sealed record PinSetStatus(
    string Name, int Images, int Objects, int MissingObjects, string Platforms, DateTimeOffset UpdatedAt,
    IReadOnlyList<IncompleteImage> IncompleteImages, bool MoreIncomplete)
{
    public bool Complete => MissingObjects == 0;
}

internal sealed record IncompleteImage(string Image, string Problem);

/// <summary>The last warm-up, as recorded by the pin set it wrote.</summary>
internal sealed record WarmUpStatus(DateTimeOffset At, string PinSet, bool Complete);
