using MirrorProxy.Upstream;

namespace MirrorProxy.Resilience;

/// <summary>
/// Decides whether an upstream is worth asking and learns from every answer. The upstream client consults it
/// before dialing and reports each outcome to it.
/// </summary>
internal interface IUpstreamHealth
{
    /// <summary>False when the upstream must not be dialed now (known down, or the mirror is offline).</summary>
    bool ShouldAttempt(string upstream);

    void Report(string upstream, UpstreamOutcome outcome);
}

/// <summary>Asks every time and keeps no state.</summary>
internal sealed class AlwaysAttemptHealth : IUpstreamHealth
{
    public static readonly AlwaysAttemptHealth Instance = new();

    public bool ShouldAttempt(string upstream) => true;

    public void Report(string upstream, UpstreamOutcome outcome)
    {
    }
}
