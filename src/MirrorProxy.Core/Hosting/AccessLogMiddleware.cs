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
            Log.Request(_logger, context.Connection.RemoteIpAddress?.ToString() ?? "-", Escape(request.Method), Escape(request.Path.Value ?? ""), Escape(request.QueryString.Value ?? ""),
                context.RequestAborted.IsCancellationRequested ? 499 : context.Response.StatusCode, context.Response.ContentLength ?? -1, _time.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    /// <summary>
    /// Control characters (CR and LF above all: a forged log line) as \xNN, and at most 2,048 characters: what a client
    /// sends never writes more than one line of the log.
    /// </summary>
    internal static string Escape(string text)
    {
        var clean = true;
        foreach (var c in text)
        {
            if (char.IsControl(c))
            {
                clean = false;
                break;
            }
        }

        if (clean && text.Length <= 2048)
        {
            return text;
        }

        var builder = new System.Text.StringBuilder(Math.Min(text.Length, 2048) + 16);
        foreach (var c in text)
        {
            if (builder.Length >= 2048)
            {
                builder.Append("...");
                break;
            }

            if (char.IsControl(c))
            {
                builder.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Information, "{Remote} {Method} {Path}{Query} {Status} {Bytes} {ElapsedMs:0.0} ms")]
        public static partial void Request(ILogger logger, string remote, string method, string path, string query, int status, long bytes, double elapsedMs);
    }
}
