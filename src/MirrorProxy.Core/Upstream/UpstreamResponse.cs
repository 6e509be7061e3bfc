using System.Net;

namespace MirrorProxy.Upstream;

/// <summary>How an upstream request ended, as a value: the hot path branches on it instead of catching.</summary>
internal enum UpstreamOutcome
{
    /// <summary>2xx; <see cref="UpstreamResponse.Message"/> holds the response.</summary>
    Success,
    NotFound,
    /// <summary>401 after authenticating (or without credentials to offer).</summary>
    Unauthorized,
    Forbidden,
    /// <summary>429.</summary>
    RateLimited,
    /// <summary>5xx.</summary>
    ServerError,
    /// <summary>Refused, reset, DNS or TLS failure, or no response headers within the timeout.</summary>
    Unreachable,
    /// <summary>Any other status, or a redirect loop.</summary>
    Failed,
    /// <summary>
    /// An answer that did not come from a registry: an HTML page where the registry API answers JSON or bytes, as a
    /// captive portal (hotel, port or ship Wi-Fi) sends for every request until someone logs in.
    /// </summary>
    Intercepted,
    /// <summary>The upstream is known to be down and was not asked (open breaker, offline switch).</summary>
    Skipped,
}

/// <summary>An upstream answer. Owns <see cref="Message"/> when present.</summary>
internal readonly struct UpstreamResponse : IDisposable
{
    public UpstreamResponse(UpstreamOutcome outcome, HttpResponseMessage? message, string? detail = null)
    {
        Outcome = outcome;
        Message = message;
        Detail = detail;
    }

    public UpstreamOutcome Outcome { get; }

    public HttpResponseMessage? Message { get; }

    /// <summary>What went wrong, for logs and error details. Never holds credentials.</summary>
    public string? Detail { get; }

    public HttpStatusCode? StatusCode => Message?.StatusCode;

    public bool IsSuccess => Outcome == UpstreamOutcome.Success;

    public TimeSpan? RetryAfter
    {
        get
        {
            var retry = Message?.Headers.RetryAfter;
            if (retry?.Delta is { } delta)
            {
                return delta;
            }

            return retry?.Date is { } date ? date - DateTimeOffset.UtcNow : null;
        }
    }

    public static UpstreamOutcome Classify(HttpStatusCode status) => (int)status switch
    {
        >= 200 and < 300 => UpstreamOutcome.Success,
        404 => UpstreamOutcome.NotFound,
        401 => UpstreamOutcome.Unauthorized,
        403 => UpstreamOutcome.Forbidden,
        429 => UpstreamOutcome.RateLimited,
        >= 500 => UpstreamOutcome.ServerError,
        _ => UpstreamOutcome.Failed,
    };

    public void Dispose() => Message?.Dispose();
}
