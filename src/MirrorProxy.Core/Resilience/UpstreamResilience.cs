using MirrorProxy.Upstream;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace MirrorProxy.Resilience;

/// <summary>Health of one upstream as its circuit breaker sees it.</summary>
internal enum UpstreamHealthState
{
    Healthy,
    /// <summary>The breaker is open: requests are answered without dialing; a probe checks the upstream.</summary>
    Down,
    /// <summary>A trial request decides whether the upstream is back.</summary>
    Probing,
    /// <summary>The mirror is offline by choice.</summary>
    Offline,
}

/// <summary>
/// Polly pipeline for one upstream: a time-to-headers timeout inside a circuit breaker. Transport failures,
/// timeouts, 5xx and 429 count as failures. While the breaker is open, calls return <see cref="UpstreamOutcome.Skipped"/>
/// at once, and a background probe (<c>GET /v2/</c>) closes it as soon as the upstream answers again.
/// Outcomes travel as values (<c>ExecuteOutcomeAsync</c>), so an open breaker costs no exception.
/// </summary>
internal sealed partial class UpstreamResilience : IDisposable
{
    private static readonly ResiliencePropertyKey<TimeSpan> TimeoutKey = new("mirrorproxy.timeout");

    private readonly ResiliencePipeline<UpstreamResponse> _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly OfflineMode _offline;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _upstream;
    private readonly TimeSpan _breakDuration;
    private readonly CancellationTokenSource _disposed = new();
    private Func<CancellationToken, Task<UpstreamResponse>>? _probe;
    private int _probing;

    public UpstreamResilience(string upstream, UpstreamOptions options, OfflineMode offline, TimeProvider time, ILogger logger)
    {
        _upstream = upstream;
        _offline = offline;
        _time = time;
        _logger = logger;
        _breakDuration = options.BreakDuration;

        var builder = new ResiliencePipelineBuilder<UpstreamResponse> { TimeProvider = time };
        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<UpstreamResponse>
        {
            ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is not null || IsFailure(args.Outcome.Result.Outcome)),
            FailureRatio = options.BreakerFailureRatio,
            MinimumThroughput = options.BreakerMinimumThroughput,
            SamplingDuration = options.BreakerSamplingDuration,
            BreakDuration = options.BreakDuration,
            StateProvider = _state,
            OnOpened = _ =>
            {
                Log.BreakerOpened(_logger, _upstream, options.BreakDuration.TotalSeconds);
                StartProbe();
                return default;
            },
            OnClosed = _ =>
            {
                Log.BreakerClosed(_logger, _upstream);
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

    /// <summary>The request the probe sends while the breaker is open; set once by the upstream client.</summary>
    public void SetProbe(Func<CancellationToken, Task<UpstreamResponse>> probe) => _probe = probe;

    /// <summary>
    /// Runs <paramref name="send"/> within <paramref name="timeout"/> to response headers, unless the mirror is
    /// offline or the breaker is open. Cancellation by <paramref name="cancellationToken"/> (the client left)
    /// is the only exception that escapes.
    /// </summary>
    public async ValueTask<UpstreamResponse> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<UpstreamResponse>> send, TState state, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_offline.IsEnabled)
        {
            return new UpstreamResponse(UpstreamOutcome.Skipped, null, "the mirror is offline");
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(TimeoutKey, timeout);
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

            return outcome.Exception switch
            {
                null => outcome.Result,
                TimeoutRejectedException => new UpstreamResponse(UpstreamOutcome.Unreachable, null, $"no response headers within {timeout.TotalSeconds:0.###} s"),
                BrokenCircuitException => new UpstreamResponse(UpstreamOutcome.Skipped, null, "upstream marked down after repeated failures"),
                OperationCanceledException when cancellationToken.IsCancellationRequested => throw new OperationCanceledException(cancellationToken),
                var other => new UpstreamResponse(UpstreamOutcome.Unreachable, null, other.Message),
            };
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>What the breaker counts against the upstream. 401/403/404 are answers, not failures.</summary>
    private static bool IsFailure(UpstreamOutcome outcome) =>
        outcome is UpstreamOutcome.Unreachable or UpstreamOutcome.ServerError or UpstreamOutcome.RateLimited;

    private void StartProbe()
    {
        if (_probe is null || Interlocked.Exchange(ref _probing, 1) == 1)
        {
            return;
        }

        _ = Task.Run(ProbeLoopAsync);
    }

    /// <summary>Once per break duration, lets one probe request through the half-open breaker until it closes.</summary>
    private async Task ProbeLoopAsync()
    {
        try
        {
            while (!_disposed.IsCancellationRequested && _state.CircuitState is not CircuitState.Closed)
            {
                await Task.Delay(_breakDuration, _time, _disposed.Token).ConfigureAwait(false);
                if (_offline.IsEnabled)
                {
                    continue;
                }

                using var response = await ExecuteAsync(static (probe, ct) => probe(ct), _probe!, TimeSpan.FromSeconds(5), _disposed.Token).ConfigureAwait(false);
                Log.Probed(_logger, _upstream, response.Outcome);
            }
        }
        catch (OperationCanceledException) when (_disposed.IsCancellationRequested)
        {
        }
        finally
        {
            Volatile.Write(ref _probing, 0);
        }
    }

    internal static string Describe(HttpRequestException ex)
    {
        var inner = ex.InnerException?.Message;
        return ex.HttpRequestError == HttpRequestError.Unknown || inner is null ? ex.Message : $"{ex.HttpRequestError}: {inner}";
    }

    public void Dispose()
    {
        _disposed.Cancel();
        _disposed.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Warning, "Upstream {Upstream} marked down after repeated failures; answering from cache, probing every {BreakSeconds} s")]
        public static partial void BreakerOpened(ILogger logger, string upstream, double breakSeconds);

        [LoggerMessage(4002, LogLevel.Information, "Upstream {Upstream} is back")]
        public static partial void BreakerClosed(ILogger logger, string upstream);

        [LoggerMessage(4003, LogLevel.Debug, "Probe of upstream {Upstream}: {Outcome}")]
        public static partial void Probed(ILogger logger, string upstream, UpstreamOutcome outcome);
    }
}
