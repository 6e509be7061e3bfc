using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MirrorProxy.IntegrationTests.Support;

public enum UpstreamFault
{
    None,
    /// <summary>Every request gets 500.</summary>
    ServerError,
    /// <summary>Every request gets 429 with Retry-After: 30.</summary>
    RateLimited,
    /// <summary>Accepts the connection and never answers.</summary>
    Hang,
    /// <summary>Answers headers at once, then the body a few bytes at a time.</summary>
    Trickle,
}

/// <summary>
/// A fault-injecting front for a real upstream registry: passes requests through while healthy, and answers
/// 500, 429, nothing at all, or a trickle when told to. Counts the requests that reached it.
/// </summary>
internal sealed class FaultProxy : IAsyncDisposable
{
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase) { "Connection", "Transfer-Encoding", "Keep-Alive", "Host" };
    private readonly WebApplication _app;
    private readonly HttpClient _client;
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Method, string Path)> _log = new();
    private int _requests;

    private FaultProxy(WebApplication app, Uri baseUri, HttpClient client)
    {
        _app = app;
        BaseUri = baseUri;
        _client = client;
    }

    public Uri BaseUri { get; }

    public volatile UpstreamFault Fault;

    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Bodies pass at about this many bytes per second (in 64 KiB steps) while positive: a slow link, not a broken one.</summary>
    public volatile int BytesPerSecond;

    /// <summary>Requests that reached the proxy with <paramref name="method"/> and a path ending with <paramref name="pathSuffix"/>.</summary>
    public int Count(string method, string pathSuffix) =>
        _log.Count(r => r.Method == method && r.Path.EndsWith(pathSuffix, StringComparison.Ordinal));

    public static async Task<FaultProxy> StartAsync(Uri upstream)
    {
        var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false, AutomaticDecompression = System.Net.DecompressionMethods.None })
        {
            BaseAddress = upstream,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        FaultProxy? self = null;
        var (app, baseUri) = await LoopbackApp.StartAsync(app => app.Run(context => self!.HandleAsync(context)));
        self = new FaultProxy(app, baseUri, client);
        return self;
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        _log.Enqueue((context.Request.Method, context.Request.Path.Value ?? ""));
        switch (Fault)
        {
            case UpstreamFault.ServerError:
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync("""{"errors":[{"code":"UNKNOWN","message":"injected"}]}""");
                return;
            case UpstreamFault.RateLimited:
                context.Response.StatusCode = 429;
                context.Response.Headers.RetryAfter = "30";
                await context.Response.WriteAsync("""{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}""");
                return;
            case UpstreamFault.Hang:
                try
                {
                    await Task.Delay(TimeSpan.FromMinutes(5), context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                }

                return;
        }

        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), context.Request.Path + context.Request.QueryString);
        foreach (var header in context.Request.Headers.Where(h => !HopByHop.Contains(h.Key)))
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray());
        }

        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers).Where(h => !HopByHop.Contains(h.Key)))
        {
            context.Response.Headers[header.Key] = header.Value.ToArray();
        }

        var body = await response.Content.ReadAsByteArrayAsync(context.RequestAborted);
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        if (Fault == UpstreamFault.Trickle)
        {
            for (var i = 0; i < body.Length; i += 8)
            {
                await context.Response.Body.WriteAsync(body.AsMemory(i, Math.Min(8, body.Length - i)), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(300, context.RequestAborted);
            }

            return;
        }

        if (BytesPerSecond > 0)
        {
            const int Step = 64 * 1024;
            for (var i = 0; i < body.Length; i += Step)
            {
                await context.Response.Body.WriteAsync(body.AsMemory(i, Math.Min(Step, body.Length - i)), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(TimeSpan.FromSeconds((double)Step / Math.Max(1, BytesPerSecond)), context.RequestAborted);
            }

            return;
        }

        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _client.Dispose();
    }
}
