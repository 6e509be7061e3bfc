using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Hosting;

/// <summary>One line per request, when <c>MirrorProxy:AccessLog</c> is on. Off by default: hot cache hits log nothing.</summary>
internal sealed partial class AccessLogMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ILogger<AccessLogMiddleware> _logger;
    private readonly TimeProvider _time;

    public AccessLogMiddleware(RequestDelegate next, ILogger<AccessLogMiddleware> logger, TimeProvider time)
    {
        _next = next;
        _logger = logger;
        _time = time;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var started = _time.GetTimestamp();
        try
        {
            await _next(context).ConfigureAwait(false);
        }
        finally
        {
            var request = context.Request;
            Log.Request(_logger, context.Connection.RemoteIpAddress?.ToString() ?? "-", request.Method, request.Path.Value ?? "", request.QueryString.Value ?? "",
                context.RequestAborted.IsCancellationRequested ? 499 : context.Response.StatusCode, context.Response.ContentLength ?? -1, _time.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Information, "{Remote} {Method} {Path}{Query} {Status} {Bytes} {ElapsedMs:0.0} ms")]
        public static partial void Request(ILogger logger, string remote, string method, string path, string query, int status, long bytes, double elapsedMs);
    }
}
