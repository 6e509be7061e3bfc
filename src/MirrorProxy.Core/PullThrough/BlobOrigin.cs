using MirrorProxy.Oci;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

/// <summary>An upstream that serves blobs by digest: a registry, or a Helm repository's chart files.</summary>
internal interface IBlobUpstream
{
    /// <summary>The name in logs and metrics.</summary>
    string Name { get; }

    /// <summary>What it brings into the cache counts as coming from here (private when it holds credentials).</summary>
    ContentOrigin Origin { get; }

    /// <summary>Timeouts and throughput floors of its downloads.</summary>
    UpstreamOptions Options { get; }

    /// <summary>Asks for the blob <paramref name="digest"/> found at <paramref name="location"/> (a repository, a chart).</summary>
    ValueTask<UpstreamResponse> SendBlobAsync(HttpMethod method, string location, Digest digest, CancellationToken cancellationToken);

    /// <summary>A failure after the headers (see <see cref="Resilience.UpstreamResilience.ReportBodyFailureAsync"/>).</summary>
    ValueTask ReportBodyFailureAsync(bool transport, string detail);
}

/// <summary>Where a blob comes from when the cache lacks it: an upstream and what it is asked for (logged; never a secret).</summary>
internal readonly record struct BlobOrigin(IBlobUpstream Upstream, string Location);
