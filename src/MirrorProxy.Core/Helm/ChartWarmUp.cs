using MirrorProxy.Readiness;
using MirrorProxy.WarmUp;

namespace MirrorProxy.Helm;

/// <summary>
/// Warms a chart reference through a running mirror as <c>helm repo update</c> and <c>helm pull</c> would: the
/// repository's index first (which refreshes it and resolves ranges), then the mirror's check names the archive,
/// index and provenance file it lacks, and they are fetched from the mirror's own URLs. A provenance file is asked
/// for once the archive is held; a repository without one answers 404, which is no failure.
/// </summary>
internal static class ChartWarmUp
{
    private const int MaxRounds = 3;

    public static async Task<WarmImageResult> WarmAsync(HttpClient mirror, string image, IWarmUpProgress progress, CancellationToken cancellationToken)
    {
        if (!ChartReference.TryParse(image, out var reference, out var error))
        {
            return new WarmImageResult(image, null, false, false, 0, 0, error);
        }

        long fetched = 0;
        try
        {
            var index = $"/helm/{reference!.Repository}/index.yaml";
            // Asking for the index refreshes it (when its TTL is over): a range resolves against the newest.
            var (_, indexError) = await FetchAsync(mirror, index, null, cancellationToken).ConfigureAwait(false);
            var provenanceTried = false;
            var complete = true;
            for (var round = 0; round < MaxRounds; round++)
            {
                var check = await WarmUpClient.CheckOneAsync(mirror, image, "all", cancellationToken).ConfigureAwait(false);
                var resolved = check.Reference is { } text && ChartReference.TryParse(text, out var parsed, out _) ? parsed : null;
                if (check.Status == ImageStatus.Ok)
                {
                    if (!provenanceTried && resolved?.Version is { } held && check.Content.All(c => c.Kind != "provenance"))
                    {
                        // Fetched once (and kept) when the repository has one; a 404 just means it has none.
                        provenanceTried = true;
                        var (provenanceBytes, provenanceError) = await FetchAsync(mirror, ChartPath(resolved, held) + ".prov", null, cancellationToken).ConfigureAwait(false);
                        if (provenanceError is null)
                        {
                            fetched += provenanceBytes;
                            complete = false;
                            continue;
                        }
                    }

                    return new WarmImageResult(image, check.Reference, true, complete, fetched, Math.Max(0, check.Bytes - fetched), null);
                }

                if (check.Status == ImageStatus.Invalid || resolved?.Version is not { } version)
                {
                    var why = string.Join("; ", check.Missing);
                    return new WarmImageResult(image, check.Reference, false, false, fetched, 0, indexError is null ? why : $"{why} (index: {indexError})");
                }

                complete = false;
                var missing = check.Content.Where(c => !c.Present).ToList();
                if (missing.Count == 0)
                {
                    return new WarmImageResult(image, check.Reference, false, false, fetched, 0, string.Join("; ", check.Missing));
                }

                foreach (var content in missing)
                {
                    var path = content.Kind switch
                    {
                        "index" => index,
                        "provenance" => ChartPath(resolved, version) + ".prov",
                        _ => ChartPath(resolved, version),
                    };
                    var before = fetched;
                    var (bytes, fetchError) = await FetchAsync(mirror, path, read => progress.Advanced(image, before + read, before + Math.Max(content.Size, read)), cancellationToken)
                        .ConfigureAwait(false);
                    if (fetchError is not null)
                    {
                        return new WarmImageResult(image, check.Reference, false, false, fetched, 0, $"{content.Kind} {content.Digest}: {fetchError}");
                    }

                    fetched += bytes;
                }
            }

            return new WarmImageResult(image, reference.ToString(), false, false, fetched, 0, $"still incomplete after {MaxRounds} rounds");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return new WarmImageResult(image, reference!.ToString(), false, false, fetched, 0, ex.Message);
        }
    }

    /// <summary>The mirror's URL of a chart version's archive (the file name is the mirror's choice; it routes by chart and version).</summary>
    public static string ChartPath(ChartReference reference, string version) =>
        $"/helm/{reference.Repository}/charts/{reference.Chart}/{version}/{reference.Chart}-{version}.tgz";

    /// <summary>GETs a file of the mirror and discards it; its size, or the error.</summary>
    private static async Task<(long Bytes, string? Error)> FetchAsync(HttpClient mirror, string path, Action<long>? onProgress, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Accept", HelmMediaTypes.ChartAccept);
        using var response = await mirror.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            return (0, $"{(int)response.StatusCode} {response.ReasonPhrase}: {body.Trim()}");
        }

        return (await WarmUpClient.DrainAsync(response, onProgress, cancellationToken).ConfigureAwait(false), null);
    }
}
