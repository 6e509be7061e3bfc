using System.Globalization;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>Reads samples from the Prometheus text exposition format.</summary>
internal sealed class PrometheusText
{
    private readonly List<(string Name, Dictionary<string, string> Labels, double Value)> _samples = [];

    public PrometheusText(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var brace = line.IndexOf('{');
            var space = line.LastIndexOf(' ');
            var name = brace >= 0 && brace < space ? line[..brace] : line[..space];
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (brace >= 0 && brace < space)
            {
                var body = line[(brace + 1)..line.LastIndexOf('}')];
                foreach (var pair in SplitLabels(body))
                {
                    var equals = pair.IndexOf('=');
                    labels[pair[..equals]] = pair[(equals + 2)..^1];
                }
            }

            _samples.Add((name, labels, double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture)));
        }
    }

    /// <summary>The sum of every sample of <paramref name="name"/> whose labels include <paramref name="labels"/>.</summary>
    public double Sum(string name, params (string Key, string Value)[] labels) =>
        _samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).Sum(s => s.Value);

    public bool Has(string name) => _samples.Any(s => s.Name == name);

    /// <summary>Every sample of <paramref name="name"/>, with its labels.</summary>
    public IEnumerable<(IReadOnlyDictionary<string, string> Labels, double Value)> Samples(string name) =>
        _samples.Where(s => s.Name == name).Select(s => ((IReadOnlyDictionary<string, string>)s.Labels, s.Value));

    private static IEnumerable<string> SplitLabels(string body)
    {
        var start = 0;
        var quoted = false;
        for (var i = 0; i < body.Length; i++)
        {
            if (body[i] == '"' && (i == 0 || body[i - 1] != '\\'))
            {
                quoted = !quoted;
            }
            else if (body[i] == ',' && !quoted)
            {
                yield return body[start..i];
                start = i + 1;
            }
        }

        if (start < body.Length)
        {
            yield return body[start..];
        }
    }
}
