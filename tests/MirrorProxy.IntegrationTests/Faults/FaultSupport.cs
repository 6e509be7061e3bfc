using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>What the fault tests ask of a mirror, whichever way it runs (in process or as the real program).</summary>
internal static class FaultSupport
{
    /// <summary>
    /// Starts the real program (<c>mirrorproxy serve</c>) on <paramref name="cache"/> with one upstream, and these
    /// settings (<c>MirrorProxy:Cache:ScrubRate</c> = <c>1GiB</c>...) in a configuration file written to <paramref name="work"/>.
    /// </summary>
    public static async Task<MirrorProcess> StartProgramAsync(
        TempDirectory work, string cache, string upstream, Uri url, IReadOnlyDictionary<string, string> settings, params string[] arguments)
    {
        // The upstream goes in the same file as its settings: an --upstream flag would replace the file's list whole.
        var root = new JsonObject();
        var all = new Dictionary<string, string>(settings) { ["MirrorProxy:Upstreams:0:Name"] = upstream, ["MirrorProxy:Upstreams:0:Url"] = url.ToString().TrimEnd('/') };
        foreach (var (key, value) in all)
        {
            var node = root;
            var parts = key.Split(':');
            foreach (var part in parts[..^1])
            {
                node = node[part] as JsonObject ?? (JsonObject)(node[part] = new JsonObject());
            }

            node[parts[^1]] = value;
        }

        // Upstreams is a list: give it as a JSON array, as an operator's file would.
        var mirrorProxy = (JsonObject)root["MirrorProxy"]!;
        var upstreams = (JsonObject)mirrorProxy["Upstreams"]!;
        mirrorProxy["Upstreams"] = new JsonArray(upstreams["0"]!.DeepClone());

        Directory.CreateDirectory(cache);
        var config = work.Combine($"mirror-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(config, root.ToJsonString());
        return await MirrorProcess.StartAsync(cache, ["--config", config, .. arguments]);
    }

    /// <summary>A request for a manifest that accepts every manifest type the tests push, as containerd's does.</summary>
    public static HttpRequestMessage ManifestRequest(HttpMethod method, string url)
    {
        var request = new HttpRequestMessage(method, url);
        foreach (var type in OciMediaTypes.AllManifestTypes)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }

        return request;
    }

    public static async Task<HttpResponseMessage> GetManifestAsync(HttpClient client, string url, CancellationToken cancellationToken = default)
    {
        using var request = ManifestRequest(HttpMethod.Get, url);
        return await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
    }

    public static string Digest(HttpResponseMessage response) => response.Headers.GetValues("Docker-Content-Digest").Single();

    /// <summary>The OCI error code of an error answer.</summary>
    public static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return json.RootElement.GetProperty("errors")[0].GetProperty("code").GetString();
    }

    public static async Task<PrometheusText> ScrapeAsync(HttpClient client) => new(await client.GetStringAsync("/metrics"));

    /// <summary>The <c>/readyz</c> answer: its status code and body.</summary>
    public static async Task<(int Status, JsonElement Body)> ReadyzAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/readyz");
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return ((int)response.StatusCode, json.RootElement.Clone());
    }

    /// <summary>The state (<c>healthy</c>, <c>down</c>...) the mirror reports for its first upstream.</summary>
    public static async Task<string> UpstreamStateAsync(HttpClient client)
    {
        using var json = JsonDocument.Parse(await client.GetByteArrayAsync("/admin/upstreams"));
        return json.RootElement[0].GetProperty("state").GetString()!;
    }

    /// <summary>Resident memory of a process (<c>VmRSS</c> in <c>/proc/&lt;pid&gt;/status</c>), in bytes.</summary>
    public static long ResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kilobytes = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kilobytes, NumberStyles.None, CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"/proc/{pid}/status has no VmRSS line.");
    }

    /// <summary>Where the cache keeps a blob's bytes.</summary>
    public static string BlobFile(string cache, string digest) => Path.Combine(cache, "blobs", "sha256", digest[7..9], digest[7..]);

    /// <summary>The digest a cached tag's file holds.</summary>
    public static string TagFileDigest(string cache, string upstream, string repository, string tag)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(cache, "tags", upstream, repository, "_tags", tag)));
        return json.RootElement.GetProperty("digest").GetString()!;
    }

    /// <summary>Files under the cache's <c>tmp/</c> (writes in progress).</summary>
    public static int TempFiles(string cache) =>
        Directory.Exists(Path.Combine(cache, "tmp"))
            ? Directory.GetFiles(Path.Combine(cache, "tmp")).Count(f => !Path.GetFileName(f).StartsWith(".probe-", StringComparison.Ordinal))
            : 0;
}
