using System.Net.Http.Headers;
using YamlDotNet.RepresentationModel;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>One chart version of an index, as Helm reads it.</summary>
internal sealed record IndexedChart(string Name, string Version, string? Digest, IReadOnlyList<string> Urls, string? Description);

/// <summary>
/// The HTTP requests the Helm client sends, as its source has them (pkg/repo/v1/chartrepo.go, pkg/getter/httpgetter.go,
/// pkg/downloader/chart_downloader.go): <c>helm repo add</c> and <c>helm repo update</c> GET <c>REPO/index.yaml</c>
/// with <c>User-Agent: Helm/VERSION</c> and no Accept header; <c>helm pull</c> takes the first of the version's urls,
/// resolved against the repository URL with a trailing slash when relative, and GETs it with
/// <c>Accept: application/gzip,application/octet-stream</c>; <c>--verify</c> or <c>--prov</c> GETs the same URL plus
/// <c>.prov</c> with the same headers. Helm's transport asks for no compression.
/// </summary>
internal sealed class HelmRequests(HttpClient http)
{
    public const string UserAgent = "Helm/3.17.3";
    public const string ChartAccept = "application/gzip,application/octet-stream";

    /// <summary><c>helm repo add NAME URL</c> / <c>helm repo update</c>: the index and the response it came in.</summary>
    public async Task<(IReadOnlyList<IndexedChart> Charts, HttpResponseMessage Response, string Text)> RepoUpdateAsync(Uri repository)
    {
        var response = await SendAsync(Resolve(repository, "index.yaml"), accept: null);
        var text = await response.Content.ReadAsStringAsync();
        return (response.IsSuccessStatusCode ? Parse(text) : [], response, text);
    }

    /// <summary><c>helm pull REPO/CHART --version VERSION [--prov]</c>: the archive (and provenance) as Helm saves them.</summary>
    public async Task<(byte[] Archive, byte[]? Provenance)> PullAsync(Uri repository, IndexedChart chart, bool provenance)
    {
        var url = Resolve(repository, chart.Urls[0]);
        using var response = await SendAsync(url, ChartAccept);
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var archive = await response.Content.ReadAsByteArrayAsync();
        if (!provenance)
        {
            return (archive, null);
        }

        using var prov = await SendAsync(new Uri(url + ".prov"), ChartAccept);
        Assert.True(prov.IsSuccessStatusCode, $"GET {url}.prov: {(int)prov.StatusCode}");
        return (archive, await prov.Content.ReadAsByteArrayAsync());
    }

    public Task<HttpResponseMessage> GetChartAsync(Uri repository, IndexedChart chart) => SendAsync(Resolve(repository, chart.Urls[0]), ChartAccept);

    /// <summary>Helm's ResolveReferenceURL: absolute as is; relative against the repository URL with a trailing slash, keeping its query.</summary>
    public static Uri Resolve(Uri repository, string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var absolute) && absolute.Scheme is "http" or "https")
        {
            return absolute;
        }

        var builder = new UriBuilder(repository);
        builder.Path = builder.Path.TrimEnd('/') + "/";
        var query = builder.Query;
        builder.Query = "";
        return new UriBuilder(new Uri(builder.Uri, url)) { Query = query.TrimStart('?') }.Uri;
    }

    private async Task<HttpResponseMessage> SendAsync(Uri url, string? accept)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.UserAgent.ParseAdd(UserAgent);
        if (accept is not null)
        {
            request.Headers.Accept.Clear();
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }

        return await http.SendAsync(request);
    }

    /// <summary>The entries of an index, read with YamlDotNet's node model (not the mirror's scanner).</summary>
    public static IReadOnlyList<IndexedChart> Parse(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        var charts = new List<IndexedChart>();
        if (!root.Children.TryGetValue(new YamlScalarNode("entries"), out var entries))
        {
            return charts;
        }

        foreach (var (name, versions) in ((YamlMappingNode)entries).Children)
        {
            foreach (YamlMappingNode version in ((YamlSequenceNode)versions).Children)
            {
                string? Value(string key) => version.Children.TryGetValue(new YamlScalarNode(key), out var v) ? ((YamlScalarNode)v).Value : null;
                var urls = version.Children.TryGetValue(new YamlScalarNode("urls"), out var u) ? ((YamlSequenceNode)u).Children.Select(x => ((YamlScalarNode)x).Value!).ToList() : [];
                charts.Add(new IndexedChart(((YamlScalarNode)name).Value!, Value("version")!, Value("digest"), urls, Value("description")));
            }
        }

        return charts;
    }
}
