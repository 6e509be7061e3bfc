namespace MirrorProxy.IntegrationTests.Support;

/// <summary>The kinds of request a <see cref="HostileRegistry"/> tells apart, as flags so one call can cover several.</summary>
[Flags]
internal enum HostileEndpoints
{
    None = 0,

    /// <summary><c>GET|HEAD /v2/</c>.</summary>
    Ping = 1 << 0,
    TagManifestGet = 1 << 1,
    TagManifestHead = 1 << 2,
    DigestManifestGet = 1 << 3,
    DigestManifestHead = 1 << 4,
    BlobGet = 1 << 5,
    BlobHead = 1 << 6,

    /// <summary>The token endpoint that the bearer challenge names.</summary>
    Token = 1 << 7,

    TagManifest = TagManifestGet | TagManifestHead,
    DigestManifest = DigestManifestGet | DigestManifestHead,
    Manifests = TagManifest | DigestManifest,
    Blobs = BlobGet | BlobHead,
    Registry = Ping | Manifests | Blobs,
    All = Registry | Token,
}

internal enum HostileFault
{
    Healthy,

    /// <summary>Accepts the request and never answers, not even headers.</summary>
    Hang,

    /// <summary>Closes the connection without an answer.</summary>
    Abort,

    /// <summary>Answers <see cref="HostileBehavior.StatusCode"/> with an OCI error body (and Retry-After when given).</summary>
    Status,

    /// <summary>302 to the same path with another query, forever.</summary>
    RedirectLoop,

    /// <summary>200 <c>text/html</c>, a login page, for GET and HEAD alike.</summary>
    CaptivePortal,

    /// <summary>Right headers, then the body one byte per <see cref="HostileBehavior.Interval"/>.</summary>
    Trickle,

    /// <summary>Headers, then bytes for ever: no Content-Length (chunked), or a huge one with <see cref="HostileBehavior.AnnounceLength"/>.</summary>
    EndlessBody,

    /// <summary>Content-Length larger than the body by <see cref="HostileBehavior.ExtraBytes"/>, then the connection closes.</summary>
    LyingLength,

    /// <summary>Right length and headers, one byte flipped.</summary>
    Corrupt,

    /// <summary>200 <c>application/json</c> whose body is not JSON.</summary>
    Garbage,

    /// <summary>Token endpoint only: the challenge names a realm on a port where nothing listens (connection refused).</summary>
    Refuse,
}

/// <summary>What a <see cref="HostileRegistry"/> endpoint does with a request.</summary>
internal sealed record HostileBehavior
{
    private HostileBehavior(HostileFault fault)
    {
        Fault = fault;
    }

    public HostileFault Fault { get; }

    public int StatusCode { get; private init; } = 200;

    public TimeSpan? RetryAfter { get; private init; }

    public TimeSpan Interval { get; private init; } = TimeSpan.FromSeconds(1);

    public bool AnnounceLength { get; private init; }

    public long ExtraBytes { get; private init; }

    public static HostileBehavior Healthy { get; } = new(HostileFault.Healthy);

    public static HostileBehavior Hang { get; } = new(HostileFault.Hang);

    public static HostileBehavior Abort { get; } = new(HostileFault.Abort);

    public static HostileBehavior RedirectLoop { get; } = new(HostileFault.RedirectLoop);

    public static HostileBehavior CaptivePortal { get; } = new(HostileFault.CaptivePortal);

    public static HostileBehavior Corrupt { get; } = new(HostileFault.Corrupt);

    public static HostileBehavior Garbage { get; } = new(HostileFault.Garbage);

    public static HostileBehavior Refuse { get; } = new(HostileFault.Refuse);

    /// <summary>400, 401, 404, 407, 418, 429, 500, 503... with an OCI error body; <paramref name="retryAfter"/> adds Retry-After.</summary>
    public static HostileBehavior Status(int statusCode, TimeSpan? retryAfter = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 400);
        return new(HostileFault.Status) { StatusCode = statusCode, RetryAfter = retryAfter };
    }

    /// <summary>One byte per <paramref name="interval"/> (default 1 s).</summary>
    public static HostileBehavior Trickle(TimeSpan? interval = null) => new(HostileFault.Trickle) { Interval = interval ?? TimeSpan.FromSeconds(1) };

    /// <summary>Bytes for ever, chunked, or with a Content-Length of 1 TiB when <paramref name="announceLength"/>.</summary>
    public static HostileBehavior EndlessBody(bool announceLength = false) => new(HostileFault.EndlessBody) { AnnounceLength = announceLength };

    /// <summary>Announces <paramref name="extraBytes"/> more than it sends, then closes.</summary>
    public static HostileBehavior LyingLength(long extraBytes = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(extraBytes, 1);
        return new(HostileFault.LyingLength) { ExtraBytes = extraBytes };
    }

    public override string ToString() => Fault switch
    {
        HostileFault.Status => $"Status {StatusCode}{(RetryAfter is { } r ? $" (Retry-After {r.TotalSeconds:F0})" : string.Empty)}",
        HostileFault.Trickle => $"Trickle (1 byte per {Interval.TotalMilliseconds:F0} ms)",
        HostileFault.EndlessBody => AnnounceLength ? "EndlessBody (Content-Length 1 TiB)" : "EndlessBody (chunked)",
        HostileFault.LyingLength => $"LyingLength (+{ExtraBytes} bytes)",
        _ => Fault.ToString(),
    };
}
