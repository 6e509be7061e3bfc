using MirrorProxy.Cache;
using MirrorProxy.Upstream;

namespace MirrorProxy.Hosting;

/// <summary>Root options, bound from the <c>MirrorProxy</c> configuration section.</summary>
public sealed class MirrorProxyOptions
{
    public const string SectionName = "MirrorProxy";

    /// <summary><c>HOST:PORT</c>, <c>:PORT</c> (every interface) or <c>[v6]:PORT</c>.</summary>
    public string Listen { get; set; } = ":5000";

    /// <summary>Name of the upstream that serves requests neither <c>ns</c> nor a path prefix route. Defaults to the first upstream.</summary>
    public string? DefaultUpstream { get; set; }

    public List<UpstreamOptions> Upstreams { get; set; } = [];

    public CacheOptions Cache { get; set; } = new();

    /// <summary>How long a cached tag is served without asking upstream. Zero revalidates on every request.</summary>
    public TimeSpan TagTtl { get; set; } = TimeSpan.FromMinutes(5);
}
