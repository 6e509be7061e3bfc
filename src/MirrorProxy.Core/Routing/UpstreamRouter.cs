using System.Collections.Frozen;
using MirrorProxy.Oci;
using MirrorProxy.Protocol;
using MirrorProxy.Upstream;

namespace MirrorProxy.Routing;

/// <summary>Where a request goes: the upstream and the repository name as that upstream knows it.</summary>
/// <param name="Upstream">The upstream registry.</param>
/// <param name="Repository">Repository on the upstream, without the upstream's own path prefix.</param>
/// <param name="Namespace">The <c>ns</c> value when it chose the upstream (echoed as <c>OCI-Namespace</c>), else null.</param>
internal readonly record struct Route(UpstreamRegistry Upstream, string Repository, string? Namespace);

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

    public bool TryRoute(string name, string? ns, out Route route, out OciError error)
    {
        route = default;
        error = default;

        if (!string.IsNullOrEmpty(ns))
        {
            if (!_byName.TryGetValue(ns, out var byNamespace))
            {
                error = OciError.NameUnknown($"no upstream is configured for registry '{ns}'");
                return false;
            }

            route = new Route(byNamespace, byNamespace.NormalizeRepository(name), ns);
            return true;
        }

        var slash = name.IndexOf('/');
        if (slash > 0 && _byName.TryGetValue(name[..slash], out var byPrefix))
        {
            route = new Route(byPrefix, byPrefix.NormalizeRepository(name[(slash + 1)..]), null);
            return true;
        }

        if (_default is null)
        {
            error = OciError.NameUnknown($"repository '{name}' names no configured upstream and there is no default upstream");
            return false;
        }

        route = new Route(_default, _default.NormalizeRepository(name), null);
        return true;
    }

    /// <summary>The upstream serving a registry name (<c>docker.io</c>) or alias.</summary>
    public bool TryGetUpstream(string registry, out UpstreamRegistry upstream) => _byName.TryGetValue(registry, out upstream!);

    /// <summary>Validates a repository name from the request path, before it touches a key, a path or a URL.</summary>
    public static bool IsValidName(string name) => OciNames.IsValidRepository(name);
}
