using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MirrorProxy.IntegrationTests.Support;

public enum FaultMode
{
    Healthy,
    /// <summary>Serves the blob with one byte flipped and the right length.</summary>
    Corrupt,
    /// <summary>Announces the full length, sends half, then resets the connection.</summary>
    DropMidway,
}

/// <summary>
/// A fault-injecting stand-in for an upstream registry that serves one blob: correct, corrupted, or cut off,
/// optionally trickled in chunks so that concurrent clients overlap. Counts the blob GETs it receives.
/// </summary>
internal sealed class FaultyUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _blobGets;

    private FaultyUpstream(WebApplication app, Uri baseUri, byte[] blob)
    {
        _app = app;
        BaseUri = baseUri;
        Blob = blob;
        Digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(blob));
    }

    public Uri BaseUri { get; }

    public byte[] Blob { get; }

    public string Digest { get; }

    public volatile FaultMode Mode;

    /// <summary>Delay between 64 KiB chunks of the body.</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    public int BlobGets => Volatile.Read(ref _blobGets);

    public static async Task<FaultyUpstream> StartAsync(byte[] blob)
    {
        FaultyUpstream? self = null;
        var (app, baseUri) = await LoopbackApp.StartAsync(app =>
        {
            app.MapGet("/v2/", () => Results.Json(new { }));
            app.MapMethods("/v2/{**rest}", ["GET", "HEAD"], (HttpContext context) => self!.ServeAsync(context));
        });
        self = new FaultyUpstream(app, baseUri, blob);
        return self;
    }

    private async Task ServeAsync(HttpContext context)
    {
        if (!context.Request.Path.Value!.EndsWith("/blobs/" + Digest, StringComparison.Ordinal))
        {
            context.Response.StatusCode = 404;
            return;
        }

        context.Response.ContentLength = Blob.Length;
        context.Response.ContentType = "application/octet-stream";
        context.Response.Headers["Docker-Content-Digest"] = Digest;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        Interlocked.Increment(ref _blobGets);
        var body = Mode == FaultMode.Corrupt ? CorruptCopy() : Blob;
        var end = Mode == FaultMode.DropMidway ? body.Length / 2 : body.Length;
        for (var offset = 0; offset < end; offset += 64 * 1024)
        {
            var count = Math.Min(64 * 1024, end - offset);
            await context.Response.Body.WriteAsync(body.AsMemory(offset, count), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            if (ChunkDelay > TimeSpan.Zero)
            {
                await Task.Delay(ChunkDelay, context.RequestAborted);
            }
        }

        if (Mode == FaultMode.DropMidway)
        {
            context.Abort();
        }
    }

    private byte[] CorruptCopy()
    {
        var copy = (byte[])Blob.Clone();
        copy[copy.Length / 3] ^= 0xFF;
        return copy;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
