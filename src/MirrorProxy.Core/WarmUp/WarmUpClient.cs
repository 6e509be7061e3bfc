using System.Buffers;
using System.Net.Http.Json;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;

namespace MirrorProxy.WarmUp;

/// <summary>How warming one image ended.</summary>
internal sealed record WarmImageResult(string Image, string? Reference, bool Succeeded, bool AlreadyComplete, long BytesFetched, long BytesCached, string? Error)
{
    /// <summary>The image's registry is not one the mirror serves: nothing was fetched, and <see cref="Error"/> says why.</summary>
    public bool NotMirrored { get; init; }
}

/// <summary>Receives progress while images are warmed; called from several tasks at once.</summary>
internal interface IWarmUpProgress
{
    void Started(string image);

    void Advanced(string image, long bytesFetched, long bytesToFetch);

    void Finished(WarmImageResult result);
}

/// <summary>
/// Pulls images through a running mirror the way a client would, fetching only what the mirror lacks: each
/// top manifest is asked for (which revalidates the tag and caches it), then the mirror's own check names the
/// manifests and blobs still missing, which are fetched (and so cached) until the image is complete.
/// </summary>
internal sealed class WarmUpClient
{
    private const int MaxRounds = 5;
    private readonly HttpClient _http;

    public WarmUpClient(HttpClient http) => _http = http;

    public async Task<IReadOnlyList<WarmImageResult>> WarmAsync(
        IReadOnlyList<string> images, PlatformSelection platforms, int concurrency, IWarmUpProgress progress, CancellationToken cancellationToken)
    {
        var results = new WarmImageResult[images.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, images.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, concurrency), CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                progress.Started(images[i]);
                results[i] = await WarmOneAsync(images[i], platforms, progress, ct).ConfigureAwait(false);
                progress.Finished(results[i]);
            }).ConfigureAwait(false);
        return results;
    }

    /// <summary>Replaces a pin set with <paramref name="images"/>. Returns null on success, else why it failed.</summary>
    public Task<string?> PinAsync(string set, IReadOnlyList<string> images, PlatformSelection platforms, CancellationToken cancellationToken) =>
        PinAsync(set, images, platforms, null, cancellationToken);

    /// <summary>Replaces a pin set with <paramref name="images"/>, recording the selection they were resolved from.</summary>
    public async Task<string?> PinAsync(string set, IReadOnlyList<string> images, PlatformSelection platforms, Selection.SelectionRecord? selection, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _http.PutAsJsonAsync($"/admin/pins/{Uri.EscapeDataString(set)}", new PinSetRequest(images, platforms.ToString()) { Selection = selection },
                PinApiJsonContext.Default.PinSetRequest, cancellationToken).ConfigureAwait(false);
            return response.IsSuccessStatusCode ? null : $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}";
        }
        catch (HttpRequestException ex)
        {
            return ex.Message;
        }
    }

    private async Task<WarmImageResult> WarmOneAsync(string image, PlatformSelection platforms, IWarmUpProgress progress, CancellationToken cancellationToken)
    {
        if (Helm.ChartReference.IsChart(image))
        {
            return await Helm.ChartWarmUp.WarmAsync(_http, image, progress, cancellationToken).ConfigureAwait(false);
        }

        if (!ImageReference.TryParse(image, out var reference, out var error))
        {
            return new WarmImageResult(image, null, false, false, 0, 0, error);
        }

        var repositoryPath = $"/v2/{reference!.Repository}";
        var ns = "?ns=" + Uri.EscapeDataString(reference.Registry);
        long fetched = 0;
        try
        {
            // Asking for the top manifest revalidates a stale tag and caches what is new.
            var top = await FetchAsync(HttpMethod.Head, $"{repositoryPath}/manifests/{reference.Reference}{ns}", null, cancellationToken).ConfigureAwait(false);
            if (top.Error is not null)
            {
                // The mirror's own check says why in its words, e.g. that no upstream serves the image's registry.
                var check = await CheckAsync(reference.ToString(), platforms, cancellationToken).ConfigureAwait(false);
                return check.Status == ImageStatus.NotMirrored
                    ? new WarmImageResult(image, reference.ToString(), false, false, 0, 0, string.Join("; ", check.Missing)) { NotMirrored = true }
                    : new WarmImageResult(image, reference.ToString(), false, false, 0, 0, "manifest: " + top.Error);
            }

            for (var round = 0; round < MaxRounds; round++)
            {
                var check = await CheckAsync(reference.ToString(), platforms, cancellationToken).ConfigureAwait(false);
                if (check.Status == ImageStatus.Ok)
                {
                    return new WarmImageResult(image, reference.ToString(), true, fetched == 0, fetched, Math.Max(0, check.Bytes - fetched), null);
                }

                var missing = check.Content.Where(c => !c.Present).OrderBy(c => c.Kind == "manifest" ? 0 : 1).ToList();
                if (missing.Count == 0)
                {
                    return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, string.Join("; ", check.Missing));
                }

                var toFetch = missing.Sum(c => Math.Max(0, c.Size));
                var before = fetched;
                foreach (var content in missing)
                {
                    var path = content.Kind == "manifest" ? "manifests" : "blobs";
                    var result = await FetchAsync(HttpMethod.Get, $"{repositoryPath}/{path}/{content.Digest}{ns}",
                        read => progress.Advanced(image, fetched + read, before + toFetch), cancellationToken).ConfigureAwait(false);
                    if (result.Error is not null)
                    {
                        return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, $"{content.Kind} {content.Digest}: {result.Error}");
                    }

                    fetched += result.Bytes;
                }
            }

            return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, $"still incomplete after {MaxRounds} rounds");
        }
        catch (HttpRequestException ex)
        {
            return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, ex.Message);
        }
        catch (IOException ex)
        {
            return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, "transfer broke off: " + ex.Message);
        }
    }

    private Task<ImageCheckResult> CheckAsync(string reference, PlatformSelection platforms, CancellationToken cancellationToken) =>
        CheckOneAsync(_http, reference, platforms.ToString(), cancellationToken);

    /// <summary>The mirror's check of one reference (an image, or a chart) for <paramref name="platforms"/>.</summary>
    internal static async Task<ImageCheckResult> CheckOneAsync(HttpClient mirror, string reference, string platforms, CancellationToken cancellationToken)
    {
        using var response = await mirror.PostAsJsonAsync("/status/images", new ImageCheckRequest([reference], platforms),
            ImageCheckJsonContext.Default.ImageCheckRequest, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync(ImageCheckJsonContext.Default.ImageCheckResponse, cancellationToken).ConfigureAwait(false);
        return body!.Images.Single();
    }

    /// <summary>An error answer in one line: the status, then the OCI error's code, message and detail when the body has one.</summary>
    private static async Task<string> DescribeErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == System.Text.Json.JsonValueKind.Array && errors.GetArrayLength() > 0)
            {
                var first = errors[0];
                var code = first.TryGetProperty("code", out var c) ? c.GetString() : null;
                var message = first.TryGetProperty("message", out var m) ? m.GetString() : null;
                var detail = first.TryGetProperty("detail", out var d) && d.ValueKind == System.Text.Json.JsonValueKind.String ? d.GetString() : null;
                return $"{status}: {code} {message}{(string.IsNullOrEmpty(detail) ? "" : $" ({detail})")}".Trim();
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return $"{status} {body}".Trim();
    }

    /// <summary>Sends a request and reads (and discards) the body. Returns the body's size, or the error.</summary>
    private async Task<(long Bytes, string? Error)> FetchAsync(HttpMethod method, string path, Action<long>? onProgress, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation("Accept", MediaTypes.ManifestAccept);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            if (method == HttpMethod.Head)
            {
                // A HEAD answer has no body: ask again with GET for the registry's error message.
                return await FetchAsync(HttpMethod.Get, path, null, cancellationToken).ConfigureAwait(false) is { Error: { } again } ? (0, again)
                    : (0, $"{(int)response.StatusCode} {response.ReasonPhrase}");
            }

            return (0, await DescribeErrorAsync(response, cancellationToken).ConfigureAwait(false));
        }

        return (await DrainAsync(response, onProgress, cancellationToken).ConfigureAwait(false), null);
    }

    /// <summary>Reads a response's body to its end through a pooled buffer and discards it, reporting the bytes read so far; their number.</summary>
    internal static async Task<long> DrainAsync(HttpResponseMessage response, Action<long>? onProgress, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long total = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                total += read;
                onProgress?.Invoke(total);
            }

            return total;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
