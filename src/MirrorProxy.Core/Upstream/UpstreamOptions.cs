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

    /// <summary>
    /// Whether clients need not authenticate to pull through this upstream. Defaults to false when the upstream has
    /// credentials (what they can read stays private), true otherwise.
    /// </summary>
    public bool? Anonymous { get; set; }

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
    public TimeSpan BlobRequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A blob body that makes no progress for this long is abandoned.</summary>
    public TimeSpan BlobIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A blob download slower than this (bytes a second, averaged over <see cref="MinBlobThroughputWindow"/>) is
    /// abandoned for every client waiting on it, so a trickling upstream cannot hold them all; the next request
    /// starts afresh. 0 turns the check off.
    /// </summary>
    public Hosting.ByteSize MinBlobThroughput { get; set; } = new(16L << 10);

    public TimeSpan MinBlobThroughputWindow { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>PEM bundle of CA certificates to trust for this upstream (an internal Harbor's CA).</summary>
    public string? CaFile { get; set; }

    /// <summary>Whether the system's trust store also applies; false trusts <see cref="CaFile"/> alone.</summary>
    public bool TrustSystemRoots { get; set; } = true;

    /// <summary>PEM client certificate for upstreams that require mutual TLS.</summary>
    public string? ClientCertificateFile { get; set; }

    public string? ClientKeyFile { get; set; }

    /// <summary>Accept any upstream certificate. For tests and emergencies only; logged as a warning at start.</summary>
    public bool InsecureSkipVerify { get; set; }

    /// <summary>Revalidation window for this upstream's tags, when no tag rule matches; defaults to the global TagTtl.</summary>
    public TimeSpan? TagTtl { get; set; }

    /// <summary>Share of failed requests (in the sampling window) that marks the upstream down.</summary>
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Requests the sampling window must hold before the ratio counts (at least 2).</summary>
    public int BreakerMinimumThroughput { get; set; } = 2;

    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the upstream stays marked down before the next probe; also the probe interval.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    public override string ToString() => $"{Name}={Url}";
}
