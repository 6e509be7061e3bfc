using Microsoft.AspNetCore.Http;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;

namespace MirrorProxy.Protocol;

/// <summary>
/// The one place where outcomes become OCI error answers. Statuses are chosen so containerd moves on to its next
/// host at once: never a 429 (containerd would retry the mirror at once, five times), and a 503 with
/// <c>Retry-After</c> for content that is not cached while its upstream cannot be reached.
/// </summary>
internal static class OciErrors
{
    public static OciError Route(in RouteResult result) => result.Status switch
    {
        RouteStatus.InvalidName => new OciError(StatusCodes.Status400BadRequest, OciErrorCode.NameInvalid, "invalid repository name", result.Detail),
        _ => OciError.NameUnknown(result.Detail),
    };

    /// <summary>A client that must (re)authenticate: 401 with the Basic challenge. Clients without credentials move on to their next host.</summary>
    public static OciError Unauthorized(string challenge, bool rejected) => new(StatusCodes.Status401Unauthorized, OciErrorCode.Unauthorized,
        rejected ? "the credentials were refused" : "authentication required") { Challenge = challenge };

    /// <summary>An authenticated client that may not pull this: answered as if it did not exist.</summary>
    public static OciError NotAllowed(in Route route) =>
        new(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "repository name not known to registry", route.Repository);

    public static OciError Blob(in Route route, in BlobResult result, Digest digest) =>
        Upstream(route, result.UpstreamOutcome, result.RetryAfter, result.Detail, isBlob: true, digest.Value);

    public static OciError Manifest(in Route route, in ManifestResult result, string reference) => result.Status switch
    {
        ManifestStatus.Invalid => new OciError(StatusCodes.Status502BadGateway, OciErrorCode.Unknown, $"upstream {route.Upstream.Name} gave an unusable answer", result.Detail),
        _ => Upstream(route, result.UpstreamOutcome, result.RetryAfter, result.Detail, isBlob: false, reference),
    };

    public static OciError Tags(in Route route, in TagListResult result) => result.Status == ListingStatus.NotFound
        ? new OciError(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "repository name not known to registry", route.Repository)
        : Upstream(route, result.UpstreamOutcome, result.RetryAfter, result.Detail, isBlob: false, "the tag list");

    public static OciError Referrers(Digest digest, in ReferrersResult result) => OciError.ManifestUnknown(digest.Value, result.Status == ListingStatus.NotFound
        ? "the upstream does not serve referrers for this digest"
        : "the upstream is unavailable and no referrers are cached");

    /// <summary>The answer when the upstream gave nothing usable and nothing is cached.</summary>
    public static OciError Upstream(in Route route, UpstreamOutcome outcome, TimeSpan? retryAfter, string? detail, bool isBlob, string reference)
    {
        var upstream = route.Upstream.Name;
        return outcome switch
        {
            UpstreamOutcome.NotFound => isBlob ? OciError.BlobUnknown(reference) : OciError.ManifestUnknown(reference),
            UpstreamOutcome.Unauthorized or UpstreamOutcome.Forbidden =>
                new OciError(StatusCodes.Status403Forbidden, OciErrorCode.Denied, $"upstream {upstream} denied access to {route.Repository}", detail),
            UpstreamOutcome.Failed =>
                new OciError(StatusCodes.Status502BadGateway, OciErrorCode.Unknown, $"upstream {upstream} gave an unusable answer", detail),
            _ => new OciError(StatusCodes.Status503ServiceUnavailable, OciErrorCode.Unavailable, $"upstream {upstream} is unavailable and {reference} is not cached", detail)
            {
                RetryAfterSeconds = (int)Math.Clamp(retryAfter?.TotalSeconds ?? 10, 1, 3600),
            },
        };
    }

    /// <summary>Parses a digest from the path; on failure, the 400 answer to send.</summary>
    public static bool TryParseDigest(string text, out Digest digest, out OciError error)
    {
        error = default;
        switch (Digest.Parse(text, out digest))
        {
            case DigestParseStatus.Ok:
                return true;
            case DigestParseStatus.UnsupportedAlgorithm:
                error = new OciError(StatusCodes.Status400BadRequest, OciErrorCode.DigestInvalid, "unsupported digest algorithm", text);
                return false;
            default:
                error = new OciError(StatusCodes.Status400BadRequest, OciErrorCode.DigestInvalid, "invalid digest", text);
                return false;
        }
    }

    /// <summary>The <c>Warning</c> header of an answer served from the cache because the upstream could not give one.</summary>
    public static string StaleWarning(in Route route, string? detail) =>
        $"299 - \"served from cache: upstream {route.Upstream.Name} unavailable{(detail is null ? "" : " (" + Sanitize(detail) + ")")}\"";

    private static string Sanitize(string text)
    {
        Span<char> buffer = text.Length <= 256 ? stackalloc char[text.Length] : new char[text.Length];
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            buffer[i] = c is '"' ? '\'' : char.IsControl(c) || c > '~' ? ' ' : c;
        }

        return new string(buffer);
    }
}
