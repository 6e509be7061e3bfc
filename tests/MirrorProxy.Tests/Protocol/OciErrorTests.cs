using System.Text.Json;
using MirrorProxy.Oci;
using MirrorProxy.Protocol;
using Microsoft.AspNetCore.Http;

namespace MirrorProxy.Tests.Protocol;

public sealed class OciErrorTests
{
    [Fact]
    public async Task WriteAsync_Get_WritesTheErrorEnvelope()
    {
        var context = NewContext("GET");

        await OciError.ManifestUnknown("latest").WriteAsync(context);

        Assert.Equal(404, context.Response.StatusCode);
        Assert.Equal("application/json", context.Response.ContentType);
        using var json = JsonDocument.Parse(Body(context));
        var error = Assert.Single(json.RootElement.GetProperty("errors").EnumerateArray());
        Assert.Equal("MANIFEST_UNKNOWN", error.GetProperty("code").GetString());
        Assert.Equal("manifest unknown", error.GetProperty("message").GetString());
        Assert.Equal("latest", error.GetProperty("detail").GetString());
        Assert.Equal(context.Response.Body.Length, context.Response.ContentLength);
    }

    [Fact]
    public async Task WriteAsync_Head_SetsStatusWithoutBody()
    {
        var context = NewContext("HEAD");

        await OciError.BlobUnknown("sha256:abc").WriteAsync(context);

        Assert.Equal(404, context.Response.StatusCode);
        Assert.Equal(0, context.Response.Body.Length);
    }

    [Fact]
    public async Task WriteAsync_Unsupported_Is405WithAllowHeader()
    {
        var context = NewContext("PUT");

        await OciError.Unsupported("push is not supported").WriteAsync(context);

        Assert.Equal(405, context.Response.StatusCode);
        Assert.Equal("GET, HEAD", context.Response.Headers.Allow.ToString());
        Assert.Contains("\"UNSUPPORTED\"", Body(context));
    }

    [Fact]
    public async Task WriteAsync_RetryAfterAndQuotes_HeaderSetAndApostrophesUnescaped()
    {
        var context = NewContext("GET");
        var error = new OciError(503, OciErrorCode.Unavailable, "upstream 'docker.io' is unavailable") { RetryAfterSeconds = 30 };

        await error.WriteAsync(context);

        Assert.Equal("30", context.Response.Headers.RetryAfter.ToString());
        var body = Body(context);
        Assert.Contains("upstream 'docker.io' is unavailable", body);
        Assert.DoesNotContain("detail", body);
    }

    [Theory]
    [InlineData(OciErrorCode.BlobUnknown, "BLOB_UNKNOWN")]
    [InlineData(OciErrorCode.DigestInvalid, "DIGEST_INVALID")]
    [InlineData(OciErrorCode.NameInvalid, "NAME_INVALID")]
    [InlineData(OciErrorCode.NameUnknown, "NAME_UNKNOWN")]
    [InlineData(OciErrorCode.TagInvalid, "TAG_INVALID")]
    [InlineData(OciErrorCode.PaginationNumberInvalid, "PAGINATION_NUMBER_INVALID")]
    [InlineData(OciErrorCode.Denied, "DENIED")]
    [InlineData(OciErrorCode.TooManyRequests, "TOOMANYREQUESTS")]
    [InlineData(OciErrorCode.Unknown, "UNKNOWN")]
    // The code is passed boxed: the enum is internal and test methods are public.
    public void ToWire_Code_IsTheSpecSpelling(object code, string wire)
    {
        Assert.Equal(wire, ((OciErrorCode)code).ToWire());
    }

    private static DefaultHttpContext NewContext(string method)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Response.Body = new MemoryStream();
        return context;
    }

    private static string Body(HttpContext context) => System.Text.Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
}
