using System.Diagnostics;

namespace MirrorProxy.IntegrationTests.Infrastructure.Load;

/// <summary>Count, median, 99th percentile and maximum of recorded durations (nearest-rank percentiles).</summary>
internal readonly record struct LatencySummary(int Count, TimeSpan P50, TimeSpan P99, TimeSpan Max)
{
    public override string ToString()
        => $"{Count} requests: p50 {P50.TotalMilliseconds:F1} ms, p99 {P99.TotalMilliseconds:F1} ms, max {Max.TotalMilliseconds:F1} ms";
}

/// <summary>
/// Records up to <see cref="Capacity"/> request durations, from any thread, for the bounded-latency assertions
/// ("p99 under 50 ms while the upstream hangs"). Recording more than the capacity is a test's mistake and throws.
/// </summary>
internal sealed class LatencyRecorder
{
    private readonly Lock _lock = new();
    private readonly List<TimeSpan> _durations;

    public LatencyRecorder(int capacity = 100_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _durations = new List<TimeSpan>(Math.Min(capacity, 4096));
    }

    public int Capacity { get; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _durations.Count;
            }
        }
    }

    public TimeSpan P50 => Percentile(50);

    public TimeSpan P99 => Percentile(99);

    public TimeSpan Max => Percentile(100);

    public void Record(TimeSpan duration)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(duration, TimeSpan.Zero);
        lock (_lock)
        {
            if (_durations.Count >= Capacity)
            {
                throw new InvalidOperationException($"The recorder holds {Capacity} durations; make it larger or record fewer.");
            }

            _durations.Add(duration);
        }
    }

    /// <summary>Runs <paramref name="operation"/> and records how long it took, whether it succeeded or threw.</summary>
    public async Task<T> MeasureAsync<T>(Func<Task<T>> operation)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            return await operation().ConfigureAwait(false);
        }
        finally
        {
            Record(Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>The nearest-rank percentile (0 &lt; <paramref name="percent"/> ≤ 100) of what was recorded.</summary>
    public TimeSpan Percentile(double percent)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(percent, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        var sorted = Sorted();
        return sorted.Length == 0 ? throw new InvalidOperationException("No durations recorded.") : NearestRank(sorted, percent);
    }

    /// <summary>All four figures from one snapshot; all zero when nothing was recorded.</summary>
    public LatencySummary Summarize()
    {
        var sorted = Sorted();
        return sorted.Length == 0 ? default : new LatencySummary(sorted.Length, NearestRank(sorted, 50), NearestRank(sorted, 99), sorted[^1]);
    }

    public override string ToString() => Summarize().ToString();

    private static TimeSpan NearestRank(TimeSpan[] sorted, double percent)
        => sorted[Math.Clamp((int)Math.Ceiling(percent / 100 * sorted.Length), 1, sorted.Length) - 1];

    private TimeSpan[] Sorted()
    {
        TimeSpan[] copy;
        lock (_lock)
        {
            copy = _durations.ToArray();
        }

        Array.Sort(copy);
        return copy;
    }
}
