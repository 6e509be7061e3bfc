namespace MirrorProxy.Upstream;

/// <summary>One upstream registry. Never printed: it may hold a password.</summary>
public sealed class UpstreamOptions
{
    /// <summary>The registry namespace clients use: the value of containerd's <c>ns</c> and the path prefix, e.g. <c>docker.io</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>Base URL, optionally with a path prefix (a Harbor proxy-cache project): <c>https://harbor.internal/dockerhub-proxy</c>.</summary>
    public string Url { get; set; } = "";

    /// <summary>Other names that route here, as <c>ns</c> values or path prefixes (e.g. <c>index.docker.io</c>, <c>k8s</c>).</summary>
    public List<string> Aliases { get; set; } = [];

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>A file whose first line is the password (a mounted Secret). Read at start.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>Whether single-segment names get <c>library/</c>. Defaults to true for <c>docker.io</c>.</summary>
    public bool? LibraryPrefix { get; set; }

    /// <summary>TCP (and TLS) connect timeout.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Time to response headers for manifest, tag, referrers and token requests.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Time to response headers for blob requests (redirects to object storage included).</summary>
    public TimeSpan BlobRequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A blob body that makes no progress for this long is abandoned.</summary>
    public TimeSpan BlobIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public override string ToString() => $"{Name}={Url}";
}
