using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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

    private FaultyUpstream(WebApplication app, byte[] blob)
    {
        _app = app;
        Blob = blob;
        Digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(blob));
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseUri = new Uri(address);
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
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        FaultyUpstream? self = null;
        app.MapGet("/v2/", () => Results.Json(new { }));
        app.MapMethods("/v2/{**rest}", ["GET", "HEAD"], (HttpContext context) => self!.ServeAsync(context));
        await app.StartAsync();
        self = new FaultyUpstream(app, blob);
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
