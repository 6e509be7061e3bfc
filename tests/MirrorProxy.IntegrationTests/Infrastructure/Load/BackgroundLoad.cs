using System.Diagnostics;
using System.Globalization;

namespace MirrorProxy.IntegrationTests.Infrastructure.Load;

internal sealed class BackgroundLoadOptions
{
    /// <summary>The load stops by itself after this many requests.</summary>
    public int MaxRequests { get; init; } = 2_000;

    /// <summary>... or after this long, whichever comes first.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Pause between one worker's requests. 100 ms: ten a second, three hundred in 30 s.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMilliseconds(100);

    public int Concurrency { get; init; } = 1;

    /// <summary>A request that takes longer counts as failed ("timeout").</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Requests one URL over and over in the background, bounded in count and time, recording each duration and
/// when each success completed, so a test can wait for "at least 100 successful requests in the preceding
/// 30 s" and then assert on latencies while it breaks something. A success is a 2xx whose body was read whole.
/// </summary>
internal sealed class BackgroundLoad : IAsyncDisposable
{
    private readonly HttpClient _client;
    private readonly Uri _url;
    private readonly BackgroundLoadOptions _options;
    private readonly CancellationTokenSource _stop;
    private readonly Lock _lock = new();
    private readonly List<long> _successTimestamps = [];
    private readonly Dictionary<string, int> _failures = new(StringComparer.Ordinal);
    private readonly Task _completion;
    private int _started;

    private BackgroundLoad(HttpClient client, Uri url, BackgroundLoadOptions options)
    {
        _client = client;
        _url = url;
        _options = options;
        Latencies = new LatencyRecorder(options.MaxRequests);
        _stop = new CancellationTokenSource(options.MaxDuration);
        _completion = Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(WorkAsync)));
    }

    /// <summary>Durations of every finished request, failed ones included.</summary>
    public LatencyRecorder Latencies { get; }

    public int Succeeded
    {
        get
        {
            lock (_lock)
            {
                return _successTimestamps.Count;
            }
        }
    }

    public int Failed
    {
        get
        {
            lock (_lock)
            {
                return _failures.Values.Sum();
            }
        }
    }

    /// <summary>Failures by what went wrong: the status code (<c>"503"</c>), <c>"timeout"</c>, or the exception's type name.</summary>
    public IReadOnlyDictionary<string, int> Failures
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<string, int>(_failures, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Completes when the load has stopped: its count or time ran out, or <see cref="StopAsync"/>.</summary>
    public Task Completion => _completion;

    /// <summary>Starts the load; the caller owns <paramref name="client"/> and must dispose the load before it.</summary>
    public static BackgroundLoad Start(HttpClient client, Uri url, BackgroundLoadOptions? options = null)
    {
        options ??= new BackgroundLoadOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRequests, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Concurrency, 1);
        return new BackgroundLoad(client, url, options);
    }

    /// <summary>Successes that completed within the last <paramref name="window"/>.</summary>
    public int SucceededWithin(TimeSpan window)
    {
        var since = Stopwatch.GetTimestamp() - (long)(window.TotalSeconds * Stopwatch.Frequency);
        lock (_lock)
        {
            var count = 0;
            for (var i = _successTimestamps.Count - 1; i >= 0 && _successTimestamps[i] >= since; i--)
            {
                count++;
            }

            return count;
        }
    }

    /// <summary>
    /// Waits until at least <paramref name="count"/> successes completed within the last <paramref name="window"/>
    /// (the default: 100 in 30 s); throws a <see cref="TimeoutException"/> with what was seen when
    /// <paramref name="timeout"/> passes or the load stops first.
    /// </summary>
    public async Task WaitForSuccessesAsync(int count = 100, TimeSpan? window = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var span = window ?? TimeSpan.FromSeconds(30);
        var deadline = Stopwatch.GetTimestamp() + (long)((timeout ?? span + TimeSpan.FromSeconds(30)).TotalSeconds * Stopwatch.Frequency);
        while (SucceededWithin(span) < count)
        {
            if (Stopwatch.GetTimestamp() > deadline || _completion.IsCompleted)
            {
                throw new TimeoutException($"{SucceededWithin(span)} of {count} successes within {span.TotalSeconds:F0} s ({this}).");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the load and waits for its requests in flight.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _completion.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    public override string ToString()
    {
        var failures = string.Join(", ", Failures.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"{f.Key}: {f.Value}"));
        return $"{Succeeded} succeeded, {Failed} failed{(failures.Length > 0 ? $" ({failures})" : string.Empty)}; {Latencies}";
    }

    private async Task WorkAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested && Interlocked.Increment(ref _started) <= _options.MaxRequests)
        {
            var started = Stopwatch.GetTimestamp();
            string? failure;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(token))
            {
                timeout.CancelAfter(_options.RequestTimeout);
                try
                {
                    using var response = await _client.GetAsync(_url, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
                    failure = response.IsSuccessStatusCode ? null : ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return; // stopped: this request is nobody's failure
                }
                catch (OperationCanceledException)
                {
                    failure = "timeout";
                }
                catch (HttpRequestException ex)
                {
                    failure = ex.InnerException?.GetType().Name ?? nameof(HttpRequestException);
                }
            }

            Latencies.Record(Stopwatch.GetElapsedTime(started));
            lock (_lock)
            {
                if (failure is null)
                {
                    _successTimestamps.Add(Stopwatch.GetTimestamp());
                }
                else
                {
                    _failures[failure] = _failures.GetValueOrDefault(failure) + 1;
                }
            }

            try
            {
                await Task.Delay(_options.Interval, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
