using System.Collections.Concurrent;

namespace MirrorProxy.Common;

/// <summary>
/// Runs at most one piece of work per key at a time; concurrent callers for the key share its task. The entry
/// leaves the table when the work completes, whether or not anyone is still waiting, so a result is never
/// handed to a caller that arrives after it.
/// </summary>
internal sealed class SingleFlight<TResult>
{
    private readonly ConcurrentDictionary<string, Lazy<Task<TResult>>> _running = new(StringComparer.Ordinal);

    /// <summary>Joins the work running for <paramref name="key"/>, or starts <paramref name="work"/>. Waiting is cancellable; the work is not.</summary>
    public Task<TResult> RunAsync<TState>(string key, Func<TState, Task<TResult>> work, TState state, CancellationToken cancellationToken)
    {
        var created = new Lazy<Task<TResult>>(() => Task.Run(() => work(state)), LazyThreadSafetyMode.ExecutionAndPublication);
        var entry = _running.GetOrAdd(key, created);
        var task = entry.Value;
        if (ReferenceEquals(entry, created))
        {
            _ = task.ContinueWith(
                static (_, s) =>
                {
                    var (table, key, entry) = ((ConcurrentDictionary<string, Lazy<Task<TResult>>>, string, Lazy<Task<TResult>>))s!;
                    table.TryRemove(new KeyValuePair<string, Lazy<Task<TResult>>>(key, entry));
                },
                (_running, key, entry),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return task.WaitAsync(cancellationToken);
    }
}
