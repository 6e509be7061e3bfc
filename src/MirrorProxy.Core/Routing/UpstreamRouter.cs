using System.Collections.Frozen;
using MirrorProxy.Oci;
using MirrorProxy.Upstream;

namespace MirrorProxy.Routing;

/// <summary>Where a request goes: the upstream and the repository name as that upstream knows it.</summary>
/// <param name="Upstream">The upstream registry.</param>
/// <param name="Repository">Repository on the upstream, without the upstream's own path prefix.</param>
/// <param name="Namespace">The <c>ns</c> value when it chose the upstream (echoed as <c>OCI-Namespace</c>), else null.</param>
internal readonly record struct Route(UpstreamRegistry Upstream, string Repository, string? Namespace);

/// <summary>How routing a request went.</summary>
internal enum RouteStatus
{
    Routed,
    /// <summary>The repository name breaks the OCI grammar.</summary>
    InvalidName,
    /// <summary><c>ns</c> names a registry no upstream serves.</summary>
    UnknownNamespace,
    /// <summary>Neither <c>ns</c> nor a path prefix chose an upstream, and there is no default one.</summary>
    NoUpstream,
}

/// <summary>A route, or why there is none.</summary>
internal readonly record struct RouteResult(RouteStatus Status, Route Route, string Detail)
{
    public bool IsRouted => Status == RouteStatus.Routed;
}

/// <summary>
/// Chooses the upstream for a request: containerd's <c>?ns=</c> first, then a first path segment naming an
/// upstream (podman, skopeo, Helm), then the default upstream.
/// </summary>
internal sealed class UpstreamRouter
{
    private readonly FrozenDictionary<string, UpstreamRegistry> _byName;
    private readonly UpstreamRegistry? _default;

    public UpstreamRouter(UpstreamRegistrySet upstreams)
    {
        var byName = new Dictionary<string, UpstreamRegistry>(StringComparer.OrdinalIgnoreCase);
        foreach (var upstream in upstreams.All)
        {
            foreach (var name in upstream.Names)
            {
                byName[name] = upstream;
            }
        }

        _byName = byName.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        _default = upstreams.Default;
    }

    /// <summary>Routes a repository name from the request path (validated here, before it touches a key, a path or a URL).</summary>
    public RouteResult Route(string name, string? ns)
    {
        if (!OciNames.IsValidRepository(name))
        {
            return new RouteResult(RouteStatus.InvalidName, default, name);
        }

        if (!string.IsNullOrEmpty(ns))
        {
            return _byName.TryGetValue(ns, out var byNamespace)
                ? new RouteResult(RouteStatus.Routed, new Route(byNamespace, byNamespace.NormalizeRepository(name), ns), "")
                : new RouteResult(RouteStatus.UnknownNamespace, default, $"no upstream is configured for registry '{ns}'");
        }

        var slash = name.IndexOf('/');
        if (slash > 0 && _byName.TryGetValue(name[..slash], out var byPrefix))
        {
            return new RouteResult(RouteStatus.Routed, new Route(byPrefix, byPrefix.NormalizeRepository(name[(slash + 1)..]), null), "");
        }

        return _default is null
            ? new RouteResult(RouteStatus.NoUpstream, default, $"repository '{name}' names no configured upstream and there is no default upstream")
            : new RouteResult(RouteStatus.Routed, new Route(_default, _default.NormalizeRepository(name), null), "");
    }

    /// <summary>The upstream serving a registry name (<c>docker.io</c>) or alias.</summary>
    public bool TryGetUpstream(string registry, out UpstreamRegistry upstream) => _byName.TryGetValue(registry, out upstream!);
}
