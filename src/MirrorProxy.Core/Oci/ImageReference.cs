namespace MirrorProxy.Oci;

/// <summary>
/// An image reference normalised the way containerd and the Docker CLI do (distribution/reference
/// <c>ParseDockerRef</c>): <c>nginx</c> is <c>docker.io/library/nginx:latest</c>, a tag with a digest keeps the digest.
/// </summary>
internal sealed record ImageReference(string Registry, string Repository, string? Tag, Digest? Digest)
{
    public const string DockerHub = "docker.io";

    /// <summary>The tag or digest to ask for.</summary>
    public string Reference => Digest?.Value ?? Tag!;

    public override string ToString() => Digest is { } digest ? $"{Registry}/{Repository}@{digest}" : $"{Registry}/{Repository}:{Tag}";

    /// <summary>A bare image ID (<c>sha256:&lt;64 hex&gt;</c> or 64 hex), as kubectl prints for images without a tag.</summary>
    public static bool IsImageId(ReadOnlySpan<char> text)
    {
        if (text.StartsWith(Oci.Digest.Sha256Prefix, StringComparison.Ordinal))
        {
            text = text[Oci.Digest.Sha256Prefix.Length..];
        }

        if (text.Length != 64)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    public static bool TryParse(string text, out ImageReference? reference, out string error)
    {
        reference = null;
        error = "";
        text = text.Trim();
        if (text.Length == 0)
        {
            error = "empty reference";
            return false;
        }

        if (IsImageId(text))
        {
            error = "a bare image ID names no repository";
            return false;
        }

        Digest? digest = null;
        var at = text.IndexOf('@');
        if (at >= 0)
        {
            var status = Oci.Digest.Parse(text[(at + 1)..], out var parsed);
            if (status != DigestParseStatus.Ok)
            {
                error = status == DigestParseStatus.UnsupportedAlgorithm ? "unsupported digest algorithm" : "invalid digest";
                return false;
            }

            digest = parsed;
            text = text[..at];
        }

        string registry;
        string remainder;
        var slash = text.IndexOf('/');
        var first = slash < 0 ? "" : text[..slash];
        if (slash > 0 && (first == "localhost" || first.Contains('.') || first.Contains(':') || first.Any(char.IsAsciiLetterUpper)))
        {
            registry = first == "index.docker.io" ? DockerHub : first;
            remainder = text[(slash + 1)..];
        }
        else
        {
            registry = DockerHub;
            remainder = text;
        }

        string? tag = null;
        var colon = remainder.LastIndexOf(':');
        if (colon > remainder.LastIndexOf('/'))
        {
            tag = remainder[(colon + 1)..];
            remainder = remainder[..colon];
            if (!OciNames.IsValidTag(tag))
            {
                error = $"invalid tag '{tag}'";
                return false;
            }
        }

        if (remainder.Any(char.IsAsciiLetterUpper))
        {
            error = "repository name must be lowercase";
            return false;
        }

        if (registry == DockerHub && !remainder.Contains('/'))
        {
            remainder = "library/" + remainder;
        }

        if (!OciNames.IsValidRepository(remainder))
        {
            error = $"invalid repository name '{remainder}'";
            return false;
        }

        reference = new ImageReference(registry, remainder, digest is null ? tag ?? "latest" : null, digest);
        return true;
    }
}
