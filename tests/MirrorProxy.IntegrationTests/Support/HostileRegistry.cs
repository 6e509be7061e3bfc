using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>
/// A fake upstream registry that serves the manifests (by tag and digest) and blobs of the images it is given, and
/// that can be switched at run time, per kind of endpoint, to every misbehaviour an island's uplink shows: hung,
/// error statuses, redirect loops, captive portals, trickled, endless, short or corrupt bodies, and a bearer
/// challenge whose token endpoint hangs, refuses, fails or answers garbage. Counts the requests per kind.
/// </summary>
internal sealed class HostileRegistry : IAsyncDisposable
{
    public const string Service = "hostile-registry";

    private const string CaptivePortalPage = """
        <!DOCTYPE html>
        <html><head><title>Sign in to the network</title></head>
        <body><h1>Welcome aboard</h1><p>Accept the terms to continue.</p>
        <form method="post" action="/login"><input name="room"><button>Connect</button></form></body></html>
        """;

    private static readonly HostileEndpoints[] s_kinds = Enum.GetValues<HostileEndpoints>().Where(e => BitOperations.IsPow2((int)e)).ToArray();

    private readonly WebApplication _app;
    private readonly Socket _refusingSocket;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HostileBehavior[] _behaviors = new HostileBehavior[s_kinds.Length];
    private readonly int[] _counts = new int[s_kinds.Length];
    private readonly ConcurrentDictionary<(string Repository, string Tag), string> _tags = new();
    private readonly ConcurrentDictionary<(string Repository, string Digest), (string MediaType, byte[] Content)> _manifests = new();
    private readonly ConcurrentDictionary<(string Repository, string Digest), byte[]> _blobs = new();
    private readonly ConcurrentDictionary<string, byte> _tokens = new();
    private volatile bool _requireBearerToken;
    private int _disposed;

    private HostileRegistry(WebApplication app, Uri baseUri, Socket refusingSocket)
    {
        _app = app;
        BaseUri = baseUri;
        _refusingSocket = refusingSocket;
        RefusedRealm = new Uri($"http://{refusingSocket.LocalEndPoint}/token");
        Array.Fill(_behaviors, HostileBehavior.Healthy);
    }

    /// <summary><c>http://127.0.0.1:PORT/</c>.</summary>
    public Uri BaseUri { get; }

    public string HostPort => BaseUri.Authority;

    /// <summary>The token endpoint the challenge names while the token endpoint is healthy (or hung, failing...).</summary>
    public Uri Realm => new(BaseUri, "token");

    /// <summary>The realm named while the token endpoint is <see cref="HostileFault.Refuse"/>: a port bound but not listening.</summary>
    public Uri RefusedRealm { get; }

    /// <summary>When on, manifests and blobs (and <c>/v2/</c>) want a token from <see cref="Realm"/>: 401 with a Bearer challenge without one.</summary>
    public bool RequireBearerToken
    {
        get => _requireBearerToken;
        set => _requireBearerToken = value;
    }

    public static async Task<HostileRegistry> StartAsync(params TestImage[] images)
    {
        // Bound and never listening: a connection to it is refused, and no one else can take the port meanwhile.
        var refusing = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        refusing.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        HostileRegistry? self = null;
        try
        {
            var (app, baseUri) = await LoopbackApp.StartAsync(app => app.Run(context => self!.HandleAsync(context)));
            self = new HostileRegistry(app, baseUri, refusing);
        }
        catch
        {
            refusing.Dispose();
            throw;
        }

        foreach (var image in images)
        {
            self.Add(image);
        }

        return self;
    }

    /// <summary>Serves this image: its tag, its manifests by digest, its blobs (re-adding a tag moves it).</summary>
    public void Add(TestImage image)
    {
        _manifests[(image.Repository, image.Digest)] = (image.MediaType, image.ManifestBytes);
        foreach (var manifest in image.ChildManifests)
        {
            _manifests[(image.Repository, manifest.Digest)] = (manifest.MediaType, manifest.Content);
        }

        foreach (var blob in image.Blobs)
        {
            _blobs[(image.Repository, blob.Digest)] = blob.Content;
        }

        _tags[(image.Repository, image.Tag)] = image.Digest;
    }

    /// <summary>From now on, requests of these kinds get <paramref name="behavior"/>.</summary>
    public void Set(HostileEndpoints endpoints, HostileBehavior behavior)
    {
        if (behavior.Fault == HostileFault.Refuse && endpoints != HostileEndpoints.Token)
        {
            throw new ArgumentException("Refuse applies to the token endpoint alone; refuse the whole registry with IsolatedUpstream.", nameof(behavior));
        }

        for (var i = 0; i < s_kinds.Length; i++)
        {
            if ((endpoints & s_kinds[i]) != 0)
            {
                Volatile.Write(ref _behaviors[i], behavior);
            }
        }
    }

    /// <summary>Every endpoint healthy again.</summary>
    public void Heal() => Set(HostileEndpoints.All, HostileBehavior.Healthy);

    public HostileBehavior BehaviorOf(HostileEndpoints endpoint) => Volatile.Read(ref _behaviors[IndexOf(endpoint)]);

    /// <summary>Requests received so far of these kinds, whatever they were answered.</summary>
    public int Count(HostileEndpoints endpoints)
    {
        var total = 0;
        for (var i = 0; i < s_kinds.Length; i++)
        {
            if ((endpoints & s_kinds[i]) != 0)
            {
                total += Volatile.Read(ref _counts[i]);
            }
        }

        return total;
    }

    public void ResetCounts()
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            Volatile.Write(ref _counts[i], 0);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _refusingSocket.Dispose();
        _stopping.Dispose();
    }

    public override string ToString() => $"HostileRegistry {BaseUri}";

    private static int IndexOf(HostileEndpoints endpoint)
    {
        var index = Array.IndexOf(s_kinds, endpoint);
        return index >= 0 ? index : throw new ArgumentException($"{endpoint} is not a single kind of endpoint.", nameof(endpoint));
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var isHead = HttpMethods.IsHead(request.Method);
        if (!isHead && !HttpMethods.IsGet(request.Method))
        {
            await WriteErrorAsync(context, StatusCodes.Status405MethodNotAllowed, "UNSUPPORTED", "pull only");
            return;
        }

        var (kind, repository, reference) = Classify(request.Path.Value ?? "/", isHead);
        if (kind == HostileEndpoints.None)
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "NAME_UNKNOWN", "no such endpoint");
            return;
        }

        var index = IndexOf(kind);
        Interlocked.Increment(ref _counts[index]);
        var behavior = Volatile.Read(ref _behaviors[index]);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            await ServeAsync(context, kind, repository, reference, isHead, behavior, linked.Token);
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            // The client left, or the registry is stopping: either way no answer, not even an empty 200.
            context.Abort();
        }
    }

    private async Task ServeAsync(HttpContext context, HostileEndpoints kind, string repository, string reference, bool isHead, HostileBehavior behavior, CancellationToken cancellationToken)
    {
        var response = context.Response;
        switch (behavior.Fault)
        {
            case HostileFault.Hang:
                await Task.Delay(Timeout.Infinite, cancellationToken);
                return;
            case HostileFault.Abort:
                context.Abort();
                return;
            case HostileFault.Status:
                if (behavior.RetryAfter is { } retryAfter)
                {
                    response.Headers.RetryAfter = ((int)retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
                }

                if (behavior.StatusCode == StatusCodes.Status407ProxyAuthenticationRequired)
                {
                    response.Headers.ProxyAuthenticate = "Basic realm=\"proxy\"";
                }

                await WriteErrorAsync(context, behavior.StatusCode, ErrorCode(behavior.StatusCode), "injected by the hostile registry");
                return;
            case HostileFault.RedirectLoop:
                var hop = int.TryParse(context.Request.Query["hop"], NumberStyles.None, CultureInfo.InvariantCulture, out var previous) ? previous + 1 : 1;
                response.StatusCode = StatusCodes.Status302Found;
                response.Headers.Location = $"{context.Request.Path}?hop={hop}";
                return;
            case HostileFault.CaptivePortal:
                await WriteBodyAsync(context, isHead, "text/html; charset=utf-8", Encoding.UTF8.GetBytes(CaptivePortalPage), cancellationToken);
                return;
            case HostileFault.Garbage:
                await WriteBodyAsync(context, isHead, "application/json", "\u0000\u0001 this is { not json"u8.ToArray(), cancellationToken);
                return;
        }

        if (kind == HostileEndpoints.Token)
        {
            var token = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
            _tokens[token] = 0;
            var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["token"] = token, ["access_token"] = token, ["expires_in"] = 300 });
            await WriteContentAsync(context, isHead, "application/json", body, digest: null, behavior, cancellationToken);
            return;
        }

        if (RequireBearerToken && !HasValidToken(context.Request))
        {
            var realm = BehaviorOf(HostileEndpoints.Token).Fault == HostileFault.Refuse ? RefusedRealm : Realm;
            var scope = kind == HostileEndpoints.Ping ? string.Empty : $",scope=\"repository:{repository}:pull\"";
            response.Headers.WWWAuthenticate = $"Bearer realm=\"{realm}\",service=\"{Service}\"{scope}";
            await WriteErrorAsync(context, StatusCodes.Status401Unauthorized, "UNAUTHORIZED", "authentication required");
            return;
        }

        switch (kind)
        {
            case HostileEndpoints.Ping:
                response.Headers["Docker-Distribution-API-Version"] = "registry/2.0";
                await WriteContentAsync(context, isHead, "application/json", "{}"u8.ToArray(), digest: null, behavior, cancellationToken);
                return;
            case HostileEndpoints.TagManifestGet or HostileEndpoints.TagManifestHead or HostileEndpoints.DigestManifestGet or HostileEndpoints.DigestManifestHead:
                var digest = kind is HostileEndpoints.TagManifestGet or HostileEndpoints.TagManifestHead
                    ? _tags.GetValueOrDefault((repository, reference))
                    : reference;
                if (digest is null || !_manifests.TryGetValue((repository, digest), out var manifest))
                {
                    await WriteErrorAsync(context, StatusCodes.Status404NotFound, "MANIFEST_UNKNOWN", $"manifest unknown: {repository}:{reference}");
                    return;
                }

                await WriteContentAsync(context, isHead, manifest.MediaType, manifest.Content, digest, behavior, cancellationToken);
                return;
            default:
                if (!_blobs.TryGetValue((repository, reference), out var blob))
                {
                    await WriteErrorAsync(context, StatusCodes.Status404NotFound, "BLOB_UNKNOWN", $"blob unknown: {reference}");
                    return;
                }

                await WriteContentAsync(context, isHead, "application/octet-stream", blob, reference, behavior, cancellationToken);
                return;
        }
    }

    /// <summary>The content with its headers, healthy or with a body fault (trickle, endless, lying length, corrupt).</summary>
    private static async Task WriteContentAsync(HttpContext context, bool isHead, string mediaType, byte[] content, string? digest, HostileBehavior behavior, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.ContentType = mediaType;
        if (digest is not null)
        {
            response.Headers["Docker-Content-Digest"] = digest;
        }

        switch (behavior.Fault)
        {
            case HostileFault.Trickle:
                response.ContentLength = content.Length;
                await response.StartAsync(cancellationToken);
                if (isHead)
                {
                    return;
                }

                await response.Body.FlushAsync(cancellationToken);
                for (var i = 0; i < content.Length; i++)
                {
                    await Task.Delay(behavior.Interval, cancellationToken);
                    await response.Body.WriteAsync(content.AsMemory(i, 1), cancellationToken);
                    await response.Body.FlushAsync(cancellationToken);
                }

                return;
            case HostileFault.EndlessBody:
                if (behavior.AnnounceLength)
                {
                    response.ContentLength = 1L << 40;
                }

                await response.StartAsync(cancellationToken);
                if (isHead)
                {
                    return;
                }

                await response.Body.WriteAsync(content, cancellationToken);
                var filler = new byte[64 * 1024];
                for (long offset = 0; ; offset += filler.Length)
                {
                    DeterministicData.Fill(0x5eed, offset, filler);
                    await response.Body.WriteAsync(filler, cancellationToken);
                }

            case HostileFault.LyingLength:
                response.ContentLength = content.Length + behavior.ExtraBytes;
                if (isHead)
                {
                    return;
                }

                await response.Body.WriteAsync(content, cancellationToken);
                await response.Body.FlushAsync(cancellationToken);
                context.Abort();
                return;
            case HostileFault.Corrupt:
                var corrupt = (byte[])content.Clone();
                corrupt[corrupt.Length / 2] ^= 0xFF;
                await WriteBodyAsync(context, isHead, mediaType, corrupt, cancellationToken);
                return;
            default:
                await WriteHealthyAsync(context, isHead, mediaType, content, cancellationToken);
                return;
        }
    }

    /// <summary>The whole content, or the single range a <c>Range: bytes=a-b</c> header asks for.</summary>
    private static async Task WriteHealthyAsync(HttpContext context, bool isHead, string mediaType, byte[] content, CancellationToken cancellationToken)
    {
        var range = context.Request.Headers.Range.ToString();
        if (range.StartsWith("bytes=", StringComparison.Ordinal) && range.IndexOf(',', StringComparison.Ordinal) < 0)
        {
            var bounds = range["bytes=".Length..].Split('-');
            if (long.TryParse(bounds[0], NumberStyles.None, CultureInfo.InvariantCulture, out var start) && start < content.Length)
            {
                var end = bounds.Length > 1 && long.TryParse(bounds[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last) ? Math.Min(last, content.Length - 1) : content.Length - 1;
                if (end >= start)
                {
                    context.Response.StatusCode = StatusCodes.Status206PartialContent;
                    context.Response.Headers.ContentRange = $"bytes {start}-{end}/{content.Length}";
                    await WriteBodyAsync(context, isHead, mediaType, content.AsMemory((int)start, (int)(end - start + 1)), cancellationToken);
                    return;
                }
            }
        }

        await WriteBodyAsync(context, isHead, mediaType, content, cancellationToken);
    }

    private static async Task WriteBodyAsync(HttpContext context, bool isHead, string contentType, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        context.Response.ContentType = contentType;
        context.Response.ContentLength = body.Length;
        if (!isHead)
        {
            await context.Response.Body.WriteAsync(body, cancellationToken);
        }
    }

    private static async Task WriteErrorAsync(HttpContext context, int status, string code, string message)
    {
        context.Response.StatusCode = status;
        var body = JsonSerializer.SerializeToUtf8Bytes(new { errors = new[] { new { code, message, detail = (object?)null } } });
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(body, context.RequestAborted);
        }
    }

    private static string ErrorCode(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "UNAUTHORIZED",
        StatusCodes.Status403Forbidden => "DENIED",
        StatusCodes.Status404NotFound => "MANIFEST_UNKNOWN",
        StatusCodes.Status429TooManyRequests => "TOOMANYREQUESTS",
        StatusCodes.Status400BadRequest => "MANIFEST_INVALID",
        _ => "UNKNOWN",
    };

    private bool HasValidToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.Ordinal) && _tokens.ContainsKey(header["Bearer ".Length..].Trim());
    }

    /// <summary>The kind of endpoint a path is, with the repository and the tag or digest.</summary>
    private static (HostileEndpoints Kind, string Repository, string Reference) Classify(string path, bool isHead)
    {
        if (path is "/v2/" or "/v2")
        {
            return (HostileEndpoints.Ping, string.Empty, string.Empty);
        }

        if (path == "/token")
        {
            return (HostileEndpoints.Token, string.Empty, string.Empty);
        }

        if (!path.StartsWith("/v2/", StringComparison.Ordinal))
        {
            return (HostileEndpoints.None, string.Empty, string.Empty);
        }

        foreach (var (segment, isManifest) in new[] { ("/manifests/", true), ("/blobs/", false) })
        {
            var at = path.LastIndexOf(segment, StringComparison.Ordinal);
            if (at > "/v2".Length)
            {
                var repository = path["/v2/".Length..at];
                var reference = path[(at + segment.Length)..];
                if (reference.Length == 0 || reference.Contains('/', StringComparison.Ordinal))
                {
                    break;
                }

                var byDigest = reference.Contains(':', StringComparison.Ordinal);
                var kind = (isManifest, byDigest, isHead) switch
                {
                    (true, false, false) => HostileEndpoints.TagManifestGet,
                    (true, false, true) => HostileEndpoints.TagManifestHead,
                    (true, true, false) => HostileEndpoints.DigestManifestGet,
                    (true, true, true) => HostileEndpoints.DigestManifestHead,
                    (false, _, false) => HostileEndpoints.BlobGet,
                    (false, _, true) => HostileEndpoints.BlobHead,
                };
                return (kind, repository, reference);
            }
        }

        return (HostileEndpoints.None, string.Empty, string.Empty);
    }
}
