using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Coordination;

/// <summary>How asking for a lease ended.</summary>
internal enum LeaseStatus
{
    /// <summary>This replica holds it now.</summary>
    Acquired,
    /// <summary>Another replica holds it.</summary>
    HeldElsewhere,
    /// <summary>The coordination store cannot be asked: go on without it (work may be done twice, never wrongly).</summary>
    Unavailable,
}

/// <summary>
/// Replicas agreeing on who does what, through a store they share. Everything here only saves work: correctness
/// comes from digests in the content store, so an unreachable coordination store costs duplicate downloads and
/// upstream requests, never wrong bytes or unavailable content.
/// </summary>
internal interface ICoordination
{
    /// <summary>Whether other replicas take part (false for a single mirror: every lease is granted at once).</summary>
    bool IsShared { get; }

    /// <summary>Whether the store answered the last time it was asked.</summary>
    bool IsReachable { get; }

    /// <summary>Where the coordination store is, for status and logs.</summary>
    string Describe { get; }

    /// <summary>Asks the store whether it answers (and updates <see cref="IsReachable"/>).</summary>
    ValueTask<bool> PingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Asks for the lease <paramref name="name"/>. Once acquired it is renewed in the background until the lease is
    /// disposed (which releases it); a holder that dies loses it after <c>LeaseDuration</c>, and another takes over.
    /// </summary>
    ValueTask<(LeaseStatus Status, Lease? Lease)> TryAcquireAsync(string name, CancellationToken cancellationToken);

    /// <summary>Whether any replica holds the lease <paramref name="name"/> now (false when the store cannot tell).</summary>
    ValueTask<bool> IsHeldAsync(string name, CancellationToken cancellationToken);

    /// <summary>The tag as the replicas last saw it upstream, or null (unknown, or the store cannot tell).</summary>
    ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken);

    /// <summary>Shares a tag record (kept when a newer one is already shared).</summary>
    ValueTask PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken);

    /// <summary>Records that content was used now, for the shared store's least-recently-used eviction (fire and forget).</summary>
    void RecordAccess(Digest digest, DateTimeOffset when);

    /// <summary>The last recorded use of each digest (null where none is recorded).</summary>
    ValueTask<DateTimeOffset?[]> GetAccessAsync(IReadOnlyList<Digest> digests, CancellationToken cancellationToken);

    /// <summary>Forgets the use of content deleted from the shared store.</summary>
    void ForgetAccess(Digest digest);
}

/// <summary>
/// A lease held by this replica, renewed in the background (every third of its duration) until disposed. When a
/// renewal finds it gone or taken, <see cref="Lost"/> turns true: the work goes on (it is correct either way), but
/// another replica may be doing it too.
/// </summary>
internal sealed class Lease : IAsyncDisposable
{
    private readonly Func<CancellationToken, ValueTask<bool>>? _renew;
    private readonly Func<ValueTask>? _release;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;
    private int _lost;

    /// <summary>A lease nobody else could hold (a single mirror).</summary>
    public static Lease Local(string name) => new(name, TimeSpan.Zero, null, null, TimeProvider.System);

    public Lease(string name, TimeSpan duration, Func<CancellationToken, ValueTask<bool>>? renew, Func<ValueTask>? release, TimeProvider time)
    {
        Name = name;
        _renew = renew;
        _release = release;
        _renewing = renew is null ? Task.CompletedTask : RenewAsync(duration / 3, time);
    }

    public string Name { get; }

    public bool Lost => Volatile.Read(ref _lost) == 1;

    private async Task RenewAsync(TimeSpan every, TimeProvider time)
    {
        try
        {
            while (true)
            {
                await Task.Delay(every, time, _stop.Token).ConfigureAwait(false);
                if (!await _renew!(_stop.Token).ConfigureAwait(false))
                {
                    Volatile.Write(ref _lost, 1);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _renewing.ConfigureAwait(false);
        _stop.Dispose();
        if (_release is not null && !Lost)
        {
            await _release().ConfigureAwait(false);
        }
    }
}

/// <summary>A single mirror: nobody to agree with.</summary>
internal sealed class LocalCoordination : ICoordination
{
    public bool IsShared => false;

    public bool IsReachable => true;

    public string Describe => "none (a single mirror)";

    public ValueTask<bool> PingAsync(CancellationToken cancellationToken) => ValueTask.FromResult(true);

    public ValueTask<(LeaseStatus Status, Lease? Lease)> TryAcquireAsync(string name, CancellationToken cancellationToken) =>
        ValueTask.FromResult<(LeaseStatus, Lease?)>((LeaseStatus.Acquired, Lease.Local(name)));

    public ValueTask<bool> IsHeldAsync(string name, CancellationToken cancellationToken) => ValueTask.FromResult(false);

    public ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken) => ValueTask.FromResult<TagRecord?>(null);

    public ValueTask PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public void RecordAccess(Digest digest, DateTimeOffset when)
    {
    }

    public ValueTask<DateTimeOffset?[]> GetAccessAsync(IReadOnlyList<Digest> digests, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new DateTimeOffset?[digests.Count]);

    public void ForgetAccess(Digest digest)
    {
    }
}
