using MirrorProxy.Metrics;

namespace MirrorProxy.Status;

/// <summary>One request the mirror answered with an error for content it did not hold.</summary>
internal sealed record PullFailure(DateTimeOffset At, string Upstream, string Repository, string Reference, int Status, string Message);

/// <summary>
/// The last <see cref="Capacity"/> pulls the mirror could not serve (content not cached and the upstream gave nothing
/// usable): what nodes asked for while offline. A fixed ring of records with bounded strings, so its memory does not
/// grow with what clients send. Also counts each one in <c>mirrorproxy.pulls.failed</c>.
/// </summary>
internal sealed class PullFailureLog
{
    public const int Capacity = 50;
    private const int MaxText = 256;

    private readonly PullFailure?[] _ring = new PullFailure?[Capacity];
    private readonly Lock _gate = new();
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private int _next;
    private long _total;

    public PullFailureLog(MirrorMetrics metrics, TimeProvider time)
    {
        _metrics = metrics;
        _time = time;
    }

    /// <summary>Failures recorded since start, including those the ring no longer holds.</summary>
    public long Total => Interlocked.Read(ref _total);

    public void Record(string upstream, string repository, string reference, int status, string message)
    {
        _metrics.PullFailed(upstream);
        var failure = new PullFailure(_time.GetUtcNow(), Bound(upstream), Bound(repository), Bound(reference), status, Bound(message));
        lock (_gate)
        {
            _ring[_next] = failure;
            _next = (_next + 1) % Capacity;
            _total++;
        }
    }

    /// <summary>The failures the ring holds, newest first.</summary>
    public IReadOnlyList<PullFailure> Recent()
    {
        lock (_gate)
        {
            var result = new List<PullFailure>(Capacity);
            for (var i = 1; i <= Capacity; i++)
            {
                if (_ring[(_next - i + Capacity) % Capacity] is { } failure)
                {
                    result.Add(failure);
                }
            }

            return result;
        }
    }

    private static string Bound(string text) => text.Length <= MaxText ? text : string.Concat(text.AsSpan(0, MaxText - 1), "…");
}
