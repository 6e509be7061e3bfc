using System.Text.Json.Serialization;

namespace MirrorProxy.Readiness;

/// <summary>The body of <c>POST /status/images</c>.</summary>
internal sealed record ImageCheckRequest(IReadOnlyList<string> Images, string? Platforms);

internal static class ImageStatus
{
    public const string Ok = "ok";
    public const string Missing = "missing";
    public const string Invalid = "invalid";

    /// <summary>The image's registry is not one the mirror serves (no upstream is configured for it).</summary>
    public const string NotMirrored = "not_mirrored";
}

/// <summary>A piece of content an image needs: a manifest (<c>kind</c> manifest) or a blob (config, layer).</summary>
internal sealed record RequiredContent(string Digest, string Kind, long Size, bool Present, string? Platform);

/// <summary>
/// One image's verdict: <c>ok</c>, <c>missing</c> (with what is missing, in words and as content),
/// <c>invalid</c> (with why) or <c>not_mirrored</c> (its registry has no upstream here). <c>Reference</c> is the normalised reference; <c>Tag</c> is true when the tag
/// itself is not cached yet (its manifest must be fetched by tag).
/// </summary>
internal sealed record ImageCheckResult(
    string Image, string? Reference, string Status, IReadOnlyList<string> Missing, IReadOnlyList<RequiredContent> Content, bool TagMissing)
{
    public long Bytes => Content.Where(c => c.Size > 0).Sum(c => c.Size);

    public long MissingBytes => Content.Where(c => !c.Present && c.Size > 0).Sum(c => c.Size);
}

internal sealed record ImageCheckResponse(string Platforms, IReadOnlyList<ImageCheckResult> Images);

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ImageCheckRequest))]
[JsonSerializable(typeof(ImageCheckResponse))]
internal sealed partial class ImageCheckJsonContext : JsonSerializerContext;
