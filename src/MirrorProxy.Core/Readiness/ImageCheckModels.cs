using System.Text.Json.Serialization;

namespace MirrorProxy.Readiness;

/// <summary>The body of <c>POST /status/images</c>.</summary>
internal sealed record ImageCheckRequest(IReadOnlyList<string> Images, string? Platforms);

internal static class ImageStatus
{
    public const string Ok = "ok";
    public const string Missing = "missing";
    public const string Invalid = "invalid";
}

/// <summary>One image's verdict: <c>ok</c>, <c>missing</c> (with what is missing) or <c>invalid</c> (with why).</summary>
internal sealed record ImageCheckResult(string Image, string? Reference, string Status, IReadOnlyList<string> Missing);

internal sealed record ImageCheckResponse(string Platforms, IReadOnlyList<ImageCheckResult> Images);

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ImageCheckRequest))]
[JsonSerializable(typeof(ImageCheckResponse))]
internal sealed partial class ImageCheckJsonContext : JsonSerializerContext;
