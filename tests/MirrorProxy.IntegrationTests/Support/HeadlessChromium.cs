using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>
/// Debian's Chromium, headless, driven over the DevTools protocol (a WebSocket on loopback): set the viewport,
/// load a page, evaluate JavaScript in it, take a screenshot. A fresh profile each time; no network but loopback.
/// </summary>
internal sealed class HeadlessChromium : IAsyncDisposable
{
    public const string Executable = "/usr/bin/chromium";

    private readonly RunningProcess _process;
    private readonly TempDirectory _profile;
    private readonly ClientWebSocket _socket = new();
    private int _nextId;

    private HeadlessChromium(RunningProcess process, TempDirectory profile)
    {
        _process = process;
        _profile = profile;
    }

    public static async Task<HeadlessChromium> StartAsync()
    {
        var profile = new TempDirectory("chromium-profile");
        var port = LoopbackPorts.GetFreePort();
        var process = ProcessRunner.Start(Executable,
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic", "--hide-scrollbars", $"--user-data-dir={profile.Path}", "--remote-debugging-address=127.0.0.1",
            $"--remote-debugging-port={port}", "about:blank",
        ]);
        var browser = new HeadlessChromium(process, profile);
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (true)
            {
                try
                {
                    var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list"))!.AsArray();
                    if (targets.OfType<JsonObject>().FirstOrDefault(t => (string?)t["type"] == "page") is { } page)
                    {
                        await browser._socket.ConnectAsync(new Uri((string)page["webSocketDebuggerUrl"]!), CancellationToken.None);
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                }

                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"chromium did not offer a page to drive:\n{process.Output.Tail(40)}");
                }

                await Task.Delay(100);
            }

            await browser.SendAsync("Page.enable");
            await browser.SendAsync("Runtime.enable");
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    /// <summary>A viewport of <paramref name="width"/> CSS pixels, as a phone (mobile) or a desktop.</summary>
    public Task SetViewportAsync(int width, int height, bool mobile) =>
        SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = mobile });

    public async Task NavigateAsync(Uri url)
    {
        await SendAsync("Page.navigate", new JsonObject { ["url"] = url.ToString() }, waitForEvent: "Page.loadEventFired");
    }

    /// <summary>Evaluates an expression in the page; its value comes back as JSON.</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
        if (result["exceptionDetails"] is { } exception)
        {
            throw new InvalidOperationException("the page's JavaScript failed: " + exception.ToJsonString());
        }

        return result["result"]?["value"]?.DeepClone();
    }

    public async Task<byte[]> ScreenshotAsync()
    {
        var result = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = true });
        return Convert.FromBase64String((string)result["data"]!);
    }

    private async Task<JsonObject> SendAsync(string method, JsonObject? parameters = null, string? waitForEvent = null)
    {
        var id = Interlocked.Increment(ref _nextId);
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        JsonObject? answer = null;
        var eventSeen = waitForEvent is null;
        while (answer is null || !eventSeen)
        {
            var received = await ReceiveAsync(timeout.Token);
            if ((int?)received["id"] == id)
            {
                answer = received["error"] is { } error ? throw new InvalidOperationException($"{method}: {error.ToJsonString()}") : (JsonObject)received["result"]!;
            }
            else if ((string?)received["method"] == waitForEvent)
            {
                eventSeen = true;
            }
        }

        return answer;
    }

    private async Task<JsonObject> ReceiveAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        WebSocketReceiveResult result;
        do
        {
            result = await _socket.ReceiveAsync(buffer, cancellationToken);
            message.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage);

        return JsonNode.Parse(message.ToArray())!.AsObject();
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _process.DisposeAsync();
        _profile.Dispose();
    }
}
