using Microsoft.Extensions.Logging;
using MirrorProxy.Common;
using MirrorProxy.Upstream;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace MirrorProxy.Resilience;

/// <summary>Health of one upstream.</summary>
internal enum UpstreamHealthState
{
    Healthy,
    /// <summary>Marked down: requests are answered without dialing; a probe checks the upstream.</summary>
    Down,
    /// <summary>A trial request decides whether the upstream is back.</summary>
    Probing,
    /// <summary>The mirror is offline by choice.</summary>
    Offline,
}

/// <summary>
/// Polly pipeline for one upstream: a time-to-headers timeout inside a circuit breaker.
/// <list type="bullet">
/// <item>A transport failure (no connection, no headers in time, a reset, a failed token fetch, a stalled body, an
/// answer that is not from a registry) marks the upstream down at once, whatever came before: an island's link
/// does not fail by degrees, and every request that waits on a dead link is a node waiting to start a pod.</item>
/// <item>5xx, 429 and content that does not verify count towards a failure ratio over a sampling window, as
/// overloaded but reachable upstreams deserve.</item>
/// </list>
/// While down, calls return <see cref="UpstreamOutcome.Skipped"/> at once (no exception on this path), and a
/// probe in the background (<c>GET /v2/</c>, which must look like a registry's answer) brings the upstream back.
/// </summary>
internal sealed partial class UpstreamResilience
{
    private static readonly ResiliencePropertyKey<TimeSpan> TimeoutKey = new("mirrorproxy.timeout");
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);

    private readonly ResiliencePipeline<UpstreamResponse> _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly CircuitBreakerManualControl _manual = new();
    private readonly OfflineMode _offline;
    private readonly BackgroundWork _background;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _upstream;
    private readonly TimeSpan _breakDuration;
    private Func<CancellationToken, Task<UpstreamResponse>>? _probe;
    private string? _downReason;
    private DateTimeOffset? _downSince;
    private int _probing;
    private int _isolated;

    public UpstreamResilience(string upstream, UpstreamOptions options, OfflineMode offline, BackgroundWork background, TimeProvider time, ILogger logger)
    {
        _upstream = upstream;
        _offline = offline;
        _background = background;
        _time = time;
        _logger = logger;
        _breakDuration = options.BreakDuration;

        var builder = new ResiliencePipelineBuilder<UpstreamResponse> { TimeProvider = time };
        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<UpstreamResponse>
        {
            ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is TimeoutRejectedException || (args.Outcome.Result is { } result && IsRatioFailure(result.Outcome))),
            FailureRatio = options.BreakerFailureRatio,
            MinimumThroughput = options.BreakerMinimumThroughput,
            SamplingDuration = options.BreakerSamplingDuration,
            BreakDuration = options.BreakDuration,
            StateProvider = _state,
            ManualControl = _manual,
            OnOpened = args =>
            {
                _downSince ??= _time.GetUtcNow();
                Log.MarkedDown(_logger, _upstream, _downReason ?? "repeated failures", _breakDuration.TotalSeconds);
                StartProbe();
                return default;
            },
            OnClosed = _ =>
            {
                Volatile.Write(ref _isolated, 0);
                _downReason = null;
                _downSince = null;
                Log.Back(_logger, _upstream);
                return default;
            },
        });
        builder.AddTimeout(new TimeoutStrategyOptions
        {
            TimeoutGenerator = static args => ValueTask.FromResult(args.Context.Properties.GetValue(TimeoutKey, TimeSpan.FromSeconds(30))),
        });
        _pipeline = builder.Build();
    }

    public UpstreamHealthState State => _offline.IsEnabled ? UpstreamHealthState.Offline : _state.CircuitState switch
    {
        CircuitState.Open or CircuitState.Isolated => UpstreamHealthState.Down,
        CircuitState.HalfOpen => UpstreamHealthState.Probing,
        _ => UpstreamHealthState.Healthy,
    };

    /// <summary>Whether a request would be sent now (not offline, not marked down).</summary>
    public bool IsAvailable => State is UpstreamHealthState.Healthy or UpstreamHealthState.Probing;

    /// <summary>Why the upstream is marked down, and since when; null while it is healthy.</summary>
    public (string Reason, DateTimeOffset Since)? Down => _downSince is { } since ? (_downReason ?? "repeated failures", since) : null;

    /// <summary>The request the probe sends while the upstream is down; set once by the upstream client.</summary>
    public void SetProbe(Func<CancellationToken, Task<UpstreamResponse>> probe) => _probe = probe;

    /// <summary>
    /// Runs <paramref name="send"/> within <paramref name="timeout"/> to response headers, unless the mirror is
    /// offline or the upstream is down. Cancellation by <paramref name="cancellationToken"/> (the client left) is
    /// the only exception that escapes.
    /// </summary>
    public async ValueTask<UpstreamResponse> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<UpstreamResponse>> send, TState state, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_offline.IsEnabled)
        {
            return new UpstreamResponse(UpstreamOutcome.Skipped, null, "the mirror is offline");
        }

        if (Volatile.Read(ref _isolated) == 1)
        {
            return Skipped();
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(TimeoutKey, timeout);
        UpstreamResponse response;
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(
                static async (ctx, s) =>
                {
                    try
                    {
                        return Outcome.FromResult(await s.Send(s.State, ctx.CancellationToken).ConfigureAwait(false));
                    }
                    catch (HttpRequestException ex)
                    {
                        return Outcome.FromResult(new UpstreamResponse(UpstreamOutcome.Unreachable, null, Describe(ex)));
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // IOException from a reset before the headers, AuthenticationException from TLS, and the like.
                        return Outcome.FromResult(new UpstreamResponse(UpstreamOutcome.Unreachable, null, ex.Message));
                    }
                },
                context,
                (Send: send, State: state)).ConfigureAwait(false);

            response = outcome.Exception switch
            {
                null => outcome.Result,
                TimeoutRejectedException => new UpstreamResponse(UpstreamOutcome.Unreachable, null, $"no response headers within {timeout.TotalSeconds:0.###} s"),
                BrokenCircuitException => Skipped(),
                OperationCanceledException when cancellationToken.IsCancellationRequested => throw new OperationCanceledException(cancellationToken),
                var other => new UpstreamResponse(UpstreamOutcome.Unreachable, null, other.Message),
            };
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        if (IsTransportFailure(response.Outcome))
        {
            await MarkDownAsync(response.Detail ?? response.Outcome.ToString()).ConfigureAwait(false);
        }

        return response;
    }

    /// <summary>
    /// A failure after the headers: a body that stalled or broke off, or (<paramref name="transport"/> false)
    /// content that did not verify. The first marks the upstream down at once; the second counts towards the ratio.
    /// </summary>
    public async ValueTask ReportBodyFailureAsync(bool transport, string detail)
    {
        if (transport)
        {
            await MarkDownAsync(detail).ConfigureAwait(false);
            return;
        }

        // Feed the breaker the failed outcome it did not see: it counts like a 5xx (as a value: an open breaker
        // answers with an outcome, not an exception).
        var context = ResilienceContextPool.Shared.Get(CancellationToken.None);
        try
        {
            await _pipeline.ExecuteOutcomeAsync(
                static (_, _) => ValueTask.FromResult(Outcome.FromResult(new UpstreamResponse(UpstreamOutcome.ServerError, null))), context, 0).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async ValueTask MarkDownAsync(string reason)
    {
        if (Interlocked.Exchange(ref _isolated, 1) == 1)
        {
            return;
        }

        _downReason = reason;
        _downSince = _time.GetUtcNow();
        await _manual.IsolateAsync().ConfigureAwait(false);
        StartProbe();
    }

    private UpstreamResponse Skipped() =>
        new(UpstreamOutcome.Skipped, null, $"upstream {_upstream} is marked down ({_downReason ?? "repeated failures"}); probing every {_breakDuration.TotalSeconds:0.#} s");

    /// <summary>What marks the upstream down at once: the link, not the registry, failed.</summary>
    internal static bool IsTransportFailure(UpstreamOutcome outcome) => outcome is UpstreamOutcome.Unreachable or UpstreamOutcome.Intercepted;

    /// <summary>What counts towards the failure ratio. 401/403/404 are answers, not failures.</summary>
    private static bool IsRatioFailure(UpstreamOutcome outcome) => outcome is UpstreamOutcome.ServerError or UpstreamOutcome.RateLimited;

    private void StartProbe()
    {
        if (_probe is null || Interlocked.Exchange(ref _probing, 1) == 1)
        {
            return;
        }

        _background.Run("probe " + _upstream, static (self, ct) => self.ProbeLoopAsync(ct), this);
    }

    /// <summary>
    /// Once per break duration, asks the upstream directly until it answers like a registry, then closes the breaker.
    /// Probes start a break duration apart, however long the last one took to fail (a dropped connect, a request
    /// hung on a dead connection), so a link that comes back is found within one interval.
    /// </summary>
    private async Task ProbeLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            var lastStart = _time.GetTimestamp();
            while (!cancellationToken.IsCancellationRequested && _state.CircuitState is not CircuitState.Closed)
            {
                var wait = _breakDuration - _time.GetElapsedTime(lastStart);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
                }

                lastStart = _time.GetTimestamp();
                if (_offline.IsEnabled)
                {
                    continue;
                }

                UpstreamOutcome outcome;
                using (var timeout = new CancellationTokenSource(ProbeTimeout, _time))
                using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token))
                {
                    try
                    {
                        using var response = await _probe!(linked.Token).ConfigureAwait(false);
                        outcome = response.Outcome;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                    {
                        outcome = UpstreamOutcome.Unreachable;
                    }
                }

                Log.Probed(_logger, _upstream, outcome);
                if (outcome == UpstreamOutcome.Success)
                {
                    await _manual.CloseAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            Volatile.Write(ref _probing, 0);
            if (_state.CircuitState is not CircuitState.Closed && !cancellationToken.IsCancellationRequested)
            {
                StartProbe();
            }
        }
    }

    internal static string Describe(HttpRequestException ex)
    {
        var inner = ex.InnerException?.Message;
        return ex.HttpRequestError == HttpRequestError.Unknown || inner is null ? ex.Message : $"{ex.HttpRequestError}: {inner}";
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Warning, "Upstream {Upstream} marked down ({Reason}); answering from cache, probing every {BreakSeconds} s")]
        public static partial void MarkedDown(ILogger logger, string upstream, string reason, double breakSeconds);

        [LoggerMessage(4002, LogLevel.Information, "Upstream {Upstream} is back")]
        public static partial void Back(ILogger logger, string upstream);

        [LoggerMessage(4003, LogLevel.Debug, "Probe of upstream {Upstream}: {Outcome}")]
        public static partial void Probed(ILogger logger, string upstream, UpstreamOutcome outcome);
    }
}
