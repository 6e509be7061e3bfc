using System.Text.Json;
using MirrorProxy.Oci;
using Microsoft.AspNetCore.Http;

namespace MirrorProxy.Protocol;

/// <summary>An error answer: status, spec code and message, written as the OCI error envelope.</summary>
internal readonly record struct OciError(int Status, OciErrorCode Code, string Message, string? Detail = null)
{
    /// <summary>Seconds for a <c>Retry-After</c> header, when the answer is temporary.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>The <c>WWW-Authenticate</c> challenge of a 401.</summary>
    public string? Challenge { get; init; }

    // Messages quote names with apostrophes; keep them readable rather than \u0027-escaped.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static OciError BlobUnknown(string digest) => new(StatusCodes.Status404NotFound, OciErrorCode.BlobUnknown, "blob unknown to registry", digest);

    public static OciError ManifestUnknown(string reference, string? why = null) =>
        new(StatusCodes.Status404NotFound, OciErrorCode.ManifestUnknown, why ?? "manifest unknown", reference);

    public static OciError NameUnknown(string message) => new(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, message);

    public static OciError Unsupported(string message) => new(StatusCodes.Status405MethodNotAllowed, OciErrorCode.Unsupported, message);

    /// <summary>Writes the envelope <c>{"errors":[{"code","message","detail"}]}</c>. HEAD answers carry no body.</summary>
    public Task WriteAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = Status;
        if (RetryAfterSeconds is { } seconds)
        {
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (Challenge is not null)
        {
            response.Headers.WWWAuthenticate = Challenge;
        }

        if (Status == StatusCodes.Status405MethodNotAllowed)
        {
            response.Headers.Allow = "GET, HEAD";
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            return Task.CompletedTask;
        }

        response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("errors");
            writer.WriteStartObject();
            writer.WriteString("code", Code.ToWire());
            writer.WriteString("message", Message);
            if (Detail is not null)
            {
                writer.WriteString("detail", Detail);
            }

            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        return response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).AsTask();
    }
}
