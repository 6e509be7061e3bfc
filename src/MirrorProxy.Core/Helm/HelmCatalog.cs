using System.Text.Json;
using System.Text.Json.Serialization;
using MirrorProxy.Oci;

namespace MirrorProxy.Helm;

/// <summary>The last index of a repository, as stored: its rewritten text is content by digest; this says which, and how to revalidate it.</summary>
internal sealed record HelmIndexRecord(string Digest, long Size, DateTimeOffset FetchedAt, string? ETag, DateTimeOffset? LastModified);

/// <summary>One chart version: the digest of its archive (from the index) and the upstream URL it was listed at.</summary>
internal sealed record HelmChartRecord(string Name, string Version, string? Digest, string Url);

/// <summary>
/// The document kept per repository (<c>helm/NAME.json</c>): the upstream URL it came from, the last index, and every
/// chart version of that index with its original URL. Written when the index changes, atomically.
/// </summary>
internal sealed record HelmRepositoryDocument(string Url, HelmIndexRecord? Index, IReadOnlyList<HelmChartRecord> Charts);

/// <summary>The provenance file of a chart version, once fetched (<c>helm/NAME/provenance/CHART/VERSION</c>).</summary>
internal sealed record HelmProvenanceRecord(string Digest, long Size);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HelmRepositoryDocument))]
[JsonSerializable(typeof(HelmProvenanceRecord))]
internal sealed partial class HelmJsonContext : JsonSerializerContext;

/// <summary>A repository's document in memory, with its chart versions by name and version.</summary>
internal sealed class HelmCatalog
{
    private readonly Dictionary<string, HelmChartRecord> _charts;
    private readonly Dictionary<string, List<HelmChartRecord>> _byName;
    private long _checkedAtTicks;

    public HelmCatalog(HelmRepositoryDocument document, DateTimeOffset checkedAt)
    {
        Document = document;
        CheckedAt = checkedAt;
        _charts = new Dictionary<string, HelmChartRecord>(document.Charts.Count, StringComparer.Ordinal);
        _byName = new Dictionary<string, List<HelmChartRecord>>(StringComparer.Ordinal);
        foreach (var chart in document.Charts)
        {
            if (_charts.TryAdd(Key(chart.Name, chart.Version), chart))
            {
                if (!_byName.TryGetValue(chart.Name, out var versions))
                {
                    _byName[chart.Name] = versions = [];
                }

                versions.Add(chart);
            }
        }
    }

    public HelmRepositoryDocument Document { get; }

    /// <summary>When the upstream last confirmed (or gave) this index; revalidations update it in memory only.</summary>
    public DateTimeOffset CheckedAt
    {
        get => new(Interlocked.Read(ref _checkedAtTicks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref _checkedAtTicks, value.UtcTicks);
    }

    public HelmIndexRecord? Index => Document.Index;

    public HelmChartRecord? Find(string chart, string version) => _charts.GetValueOrDefault(Key(chart, version));

    public IReadOnlyList<HelmChartRecord> Versions(string chart) => _byName.TryGetValue(chart, out var versions) ? versions : [];

    public static Digest? ParseDigest(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var hex = text.StartsWith(Digest.Sha256Prefix, StringComparison.OrdinalIgnoreCase) ? text[Digest.Sha256Prefix.Length..] : text;
        return Digest.TryParse(Digest.Sha256Prefix + hex.ToLowerInvariant(), out var digest) ? digest : null;
    }

    private static string Key(string chart, string version) => string.Concat(chart, "\n", version);
}
