using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure;

internal enum OutputSource
{
    StandardOutput,
    StandardError,
}

internal sealed record OutputLine(DateTimeOffset Timestamp, OutputSource Source, string Text);

/// <summary>Thread-safe, append-only (until <see cref="Clear"/>) buffer of captured process output lines.</summary>
internal sealed class OutputBuffer
{
    private readonly Lock _lock = new();
    private readonly List<OutputLine> _lines = [];
    private readonly int _maxLines;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public OutputBuffer(int maxLines = 200_000)
    {
        _maxLines = maxLines;
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _lines.Count;
            }
        }
    }

    public void Append(OutputSource source, string text)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_lines.Count >= _maxLines)
            {
                _lines.RemoveRange(0, _maxLines / 10);
            }

            _lines.Add(new OutputLine(DateTimeOffset.UtcNow, source, text));
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    public IReadOnlyList<OutputLine> Snapshot()
    {
        lock (_lock)
        {
            return _lines.ToArray();
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _lines.Clear();
        }
    }

    /// <summary>Waits (bounded) until some captured line satisfies <paramref name="predicate"/>; returns it.</summary>
    public async Task<OutputLine> WaitForLineAsync(Func<OutputLine, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutCts = new CancellationTokenSource(timeout);
        using var linkedCts = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken);
        var scanned = 0;
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                // Lines may have been cleared/trimmed since the last scan: rescan from the start then.
                if (scanned > _lines.Count)
                {
                    scanned = 0;
                }

                for (; scanned < _lines.Count; scanned++)
                {
                    if (predicate(_lines[scanned]))
                    {
                        return _lines[scanned];
                    }
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(linkedCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"No matching output line within {timeout.TotalSeconds:F1}s. Last lines:{Environment.NewLine}{Tail(40)}");
            }
        }
    }

    public string Tail(int lineCount)
    {
        var snapshot = Snapshot();
        var builder = new StringBuilder();
        foreach (var line in snapshot.Skip(Math.Max(0, snapshot.Count - lineCount)))
        {
            builder.Append(line.Source == OutputSource.StandardError ? "[err] " : "[out] ").AppendLine(line.Text);
        }

        return builder.ToString();
    }

    public override string ToString() => Tail(int.MaxValue);
}
