using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Support;

/// <summary>
/// A registry in memory behind a <see cref="FakeHttpHandler"/>: tags, manifests and blobs it serves as a
/// distribution registry would, an optional gate that holds blob bodies back, and a hook to answer otherwise.
/// </summary>
internal sealed class TestRegistryUpstream
{
    private readonly ConcurrentDictionary<string, (byte[] Content, string MediaType)> _manifests = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new(StringComparer.Ordinal);

    public TestRegistryUpstream()
    {
        Handler = new FakeHttpHandler(RespondAsync);
    }

    public FakeHttpHandler Handler { get; }

    /// <summary>When set, answers instead of the registry (return null to let the registry answer).</summary>
    public Func<HttpRequestMessage, HttpResponseMessage?>? Override { get; set; }

    /// <summary>When set, blob bodies wait for it before they are sent.</summary>
    public TaskCompletionSource? BlobGate { get; set; }

    /// <summary>When set, every answer waits for it.</summary>
    public TaskCompletionSource? Gate { get; set; }

    public int Count(string method, string pathPart) => Handler.Requests.Count(r => r.Method.Method == method && r.Uri.AbsolutePath.Contains(pathPart, StringComparison.Ordinal));

    public Digest AddBlob(byte[] content)
    {
        var digest = Digest.ComputeSha256(content);
        _blobs[digest.Value] = content;
        return digest;
    }

    public Digest AddManifest(string repository, string tag, byte[] content, string mediaType)
    {
        var digest = Digest.ComputeSha256(content);
        _manifests[$"{repository}:{digest.Value}"] = (content, mediaType);
        _manifests[$"{repository}:{tag}"] = (content, mediaType);
        return digest;
    }

    private async Task<HttpResponseMessage> RespondAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (Gate is { } all)
        {
            await all.Task.WaitAsync(cancellationToken);
        }

        if (Override?.Invoke(request) is { } answer)
        {
            return answer;
        }

        var path = request.RequestUri!.AbsolutePath;
        if (path == "/v2/")
        {
            return FakeHttpHandler.Json("{}");
        }

        var blobs = path.LastIndexOf("/blobs/", StringComparison.Ordinal);
        if (blobs > 0 && _blobs.TryGetValue(path[(blobs + 7)..], out var blob))
        {
            if (BlobGate is { } gate && request.Method == HttpMethod.Get)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            return Content(request, blob, "application/octet-stream", Digest.ComputeSha256(blob));
        }

        var manifests = path.LastIndexOf("/manifests/", StringComparison.Ordinal);
        if (manifests > 0)
        {
            var repository = path[4..manifests];
            if (_manifests.TryGetValue($"{repository}:{path[(manifests + 11)..]}", out var manifest))
            {
                return Content(request, manifest.Content, manifest.MediaType, Digest.ComputeSha256(manifest.Content));
            }
        }

        return FakeHttpHandler.Json("""{"errors":[{"code":"NOT_FOUND"}]}""", HttpStatusCode.NotFound);
    }

    private static HttpResponseMessage Content(HttpRequestMessage request, byte[] content, string mediaType, Digest digest)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = request.Method == HttpMethod.Head ? new ByteArrayContent([]) : new ByteArrayContent(content),
        };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        response.Content.Headers.ContentLength = content.Length;
        response.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest.Value);
        return response;
    }
}
