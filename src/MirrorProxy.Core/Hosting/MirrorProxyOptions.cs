using MirrorProxy.Cache;
using MirrorProxy.Upstream;

namespace MirrorProxy.Hosting;

/// <summary>Root options, bound from the <c>MirrorProxy</c> configuration section.</summary>
public sealed class MirrorProxyOptions
{
    public const string SectionName = "MirrorProxy";

    /// <summary><c>HOST:PORT</c>, <c>:PORT</c> (every interface) or <c>[v6]:PORT</c>.</summary>
    public string Listen { get; set; } = ":5000";

    /// <summary>TLS for <see cref="Listen"/>; plain HTTP when no certificate is set.</summary>
    public TlsOptions Tls { get; set; } = new();

    /// <summary>An extra plain-HTTP address while TLS is on (for loopback probes or insecure setups), e.g. <c>127.0.0.1:5001</c>.</summary>
    public string? PlainListen { get; set; }

    /// <summary>Name of the upstream that serves requests neither <c>ns</c> nor a path prefix route. Defaults to the first upstream.</summary>
    public string? DefaultUpstream { get; set; }

    public List<UpstreamOptions> Upstreams { get; set; } = [];

    public CacheOptions Cache { get; set; } = new();

    /// <summary>How long a cached tag is served without asking upstream. Zero revalidates on every request.</summary>
    public TimeSpan TagTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Revalidation windows by upstream, repository and tag pattern; the first match wins.</summary>
    public List<TagTtlRule> TagTtlRules { get; set; } = [];

    /// <summary>
    /// Whether an upstream 404 for a cached tag removes it from what the mirror serves. Off by default: an
    /// upstream deletion (or a misconfigured upstream) must not take running workloads' images away.
    /// </summary>
    public bool HonourUpstreamNotFound { get; set; }

    /// <summary>Never dial an upstream; serve from the cache only. Can be flipped at run time (admin endpoint).</summary>
    public bool Offline { get; set; }

    public AdminOptions Admin { get; set; } = new();

    /// <summary>Whether /readyz also requires every pinned object to be in the cache.</summary>
    public bool ReadyRequiresPinnedContent { get; set; }

    /// <summary>Console log format: <c>text</c> (one line per event) or <c>json</c> (for log shippers).</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>Log one line per request. Off by default, so cache hits cost no log line.</summary>
    public bool AccessLog { get; set; }
}

/// <summary>A revalidation window for tags matching glob patterns (<c>*</c> any run of characters, <c>?</c> one).</summary>
public sealed class TagTtlRule
{
    /// <summary>Upstream name; null or empty matches every upstream.</summary>
    public string? Upstream { get; set; }

    /// <summary>Repository glob, e.g. <c>library/*</c>; null matches every repository.</summary>
    public string? Repository { get; set; }

    /// <summary>Tag glob, e.g. <c>latest</c> or <c>v*.*.*</c>; null matches every tag.</summary>
    public string? Tag { get; set; }

    public TimeSpan Ttl { get; set; }
}

public sealed class TlsOptions
{
    /// <summary>PEM certificate, with its chain after it (cert-manager's <c>tls.crt</c>).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM private key (cert-manager's <c>tls.key</c>).</summary>
    public string? KeyFile { get; set; }

    /// <summary>How often, at most, the files are checked for a renewed certificate.</summary>
    public TimeSpan ReloadInterval { get; set; } = TimeSpan.FromSeconds(5);

    public bool Enabled => CertificateFile is not null || KeyFile is not null;
}

public sealed class AdminOptions
{
    /// <summary>Whether <c>/admin/*</c> answers every host. Off by default: loopback, or a client with the token.</summary>
    public bool AllowRemote { get; set; }

    /// <summary>A bearer token that lets remote clients (the warm-up job) use <c>/admin/*</c>.</summary>
    public string? Token { get; set; }

    /// <summary>A file holding the token (a mounted Secret); read at start.</summary>
    public string? TokenFile { get; set; }
}
