using MirrorProxy.Helm;

namespace MirrorProxy.Tests.Helm;

public sealed class HelmIndexScannerTests
{
    private const string Index = """
        apiVersion: v1
        entries:
          alpine:
          - apiVersion: v2
            created: "2024-01-02T03:04:05Z"
            description: Deploy a basic Alpine Linux pod   # a comment
            digest: 515c58e5f79d8b2913a10cb400ebb6fa9c77fe813287afbacf1a0b897cd78727
            name: alpine
            urls:
            - https://charts.example.com/alpine-0.2.0.tgz
            - alpine-0.2.0.tgz
            version: 0.2.0
          - digest: sha256:0c3f8c8a6a28c2bab4e1a8d06a3b1a7db5b4f8f1d8c55e5cbb4e0a5f3f0f5a11
            name: alpine
            urls: ['alpine-0.1.0.tgz']
            version: "0.1.0"
          nginx: [{"name": "nginx", "version": "1.2.3", "urls": ["http://other.example.com:8080/nginx-1.2.3.tgz"], "digest": "abc"}]
        generated: "2024-01-02T03:04:05Z"

        """;

    private static (IndexScanStatus Status, string Output, List<IndexEntry> Entries) Rewrite(string text, Func<IndexEntry, string?> replace)
    {
        var output = new StringWriter();
        var entries = new List<IndexEntry>();
        var status = HelmIndexScanner.Scan(new StringReader(text), output, entry =>
        {
            entries.Add(entry);
            return replace(entry);
        });
        return (status, output.ToString(), entries);
    }

    [Fact]
    public void Scan_ListsEveryVersion_WithItsDigestAndUrls()
    {
        var (status, output, entries) = Rewrite(Index, _ => null);

        Assert.Equal(IndexScanStatus.Ok, status);
        Assert.Equal(Index, output);
        Assert.Equal(["alpine 0.2.0", "alpine 0.1.0", "nginx 1.2.3"], entries.Select(e => $"{e.Chart} {e.Version}"));
        Assert.Equal("515c58e5f79d8b2913a10cb400ebb6fa9c77fe813287afbacf1a0b897cd78727", entries[0].Digest);
        Assert.Equal(["https://charts.example.com/alpine-0.2.0.tgz", "alpine-0.2.0.tgz"], entries[0].Urls.Select(u => u.Value));
        Assert.Equal(["http://other.example.com:8080/nginx-1.2.3.tgz"], entries[2].Urls.Select(u => u.Value));
    }

    [Fact]
    public void Rewrite_ReplacesOnlyTheUrls_KeepingEverythingElseToTheCharacter()
    {
        var (status, output, _) = Rewrite(Index, e => $"charts/{e.Chart}/{e.Version}/{e.Chart}-{e.Version}.tgz");

        Assert.Equal(IndexScanStatus.Ok, status);
        var expected = Index
            .Replace("- https://charts.example.com/alpine-0.2.0.tgz", "- charts/alpine/0.2.0/alpine-0.2.0.tgz")
            .Replace("- alpine-0.2.0.tgz", "- charts/alpine/0.2.0/alpine-0.2.0.tgz")
            .Replace("['alpine-0.1.0.tgz']", "['charts/alpine/0.1.0/alpine-0.1.0.tgz']")
            .Replace("[\"http://other.example.com:8080/nginx-1.2.3.tgz\"]", "[\"charts/nginx/1.2.3/nginx-1.2.3.tgz\"]");
        Assert.Equal(expected, output);
    }

    [Fact]
    public void Rewrite_OfAnIndexLargerThanTheBuffer_IsExact()
    {
        var builder = new System.Text.StringBuilder("apiVersion: v1\nentries:\n");
        for (var c = 0; c < 50; c++)
        {
            builder.Append($"  chart{c}:\n");
            for (var v = 0; v < 40; v++)
            {
                builder.Append($"  - name: chart{c}\n    description: {new string('x', 100)}\n    urls:\n    - https://example.com/chart{c}-1.{v}.0.tgz\n    version: 1.{v}.0\n    digest: {c:x4}{v:x60}\n");
            }
        }

        var text = builder.ToString();
        var (status, output, entries) = Rewrite(text, e => $"charts/{e.Chart}/{e.Version}/x.tgz");

        Assert.Equal(IndexScanStatus.Ok, status);
        Assert.Equal(2000, entries.Count);
        Assert.Equal(System.Text.RegularExpressions.Regex.Replace(text, @"https://example\.com/(chart\d+)-(1\.\d+\.0)\.tgz", "charts/$1/$2/x.tgz"), output);
    }

    [Theory]
    [InlineData("<html><body>Please log in</body></html>", "NotAnIndex")]
    [InlineData("- a\n- b\n", "NotAnIndex")]
    [InlineData("foo: bar\n", "NotAnIndex")]
    [InlineData("apiVersion: v1\nentries: {a: [ {name: a\n", "NotYaml")]
    public void Scan_OfSomethingElse_SaysWhat(string text, string expected)
    {
        Assert.Equal(expected, Rewrite(text, _ => null).Status.ToString());
    }

    [Fact]
    public void Filter_KeepsOnlyTheChosenVersions_AndDropsChartsLeftEmpty()
    {
        var output = new StringWriter();
        var status = HelmIndexFilter.Filter(new StringReader(Index), output, (chart, version, _) => chart == "alpine" && version == "0.1.0");

        Assert.Equal(IndexScanStatus.Ok, status);
        var entries = new List<IndexEntry>();
        Assert.Equal(IndexScanStatus.Ok, HelmIndexScanner.Scan(new StringReader(output.ToString()), null, e => { entries.Add(e); return null; }));
        var kept = Assert.Single(entries);
        Assert.Equal(("alpine", "0.1.0", "sha256:0c3f8c8a6a28c2bab4e1a8d06a3b1a7db5b4f8f1d8c55e5cbb4e0a5f3f0f5a11"), (kept.Chart, kept.Version, kept.Digest));
        Assert.DoesNotContain("nginx", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("generated:", output.ToString(), StringComparison.Ordinal);
    }
}
