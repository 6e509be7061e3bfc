using MirrorProxy.Helm;
using MirrorProxy.Selection;

namespace MirrorProxy.Tests.Selection;

public sealed class SelectionRuleTests
{
    private static readonly string[] Tags =
    [
        "1.26.0", "1.27.0", "1.27.1", "1.27.3", "1.27.3-alpine", "1.28.0", "2.0.0-rc.1", "2.0.0", "v1.29.0", "4.0", "14.0", "latest", "stable", "nightly-20240102", "nightly-20240101",
    ];

    private static IReadOnlyList<string> Apply(SelectionRule rule, IReadOnlyList<string>? tags = null)
    {
        Assert.True(CompiledRule.TryCompile(rule, 1, out var compiled, out var errors), string.Join("; ", errors));
        return compiled!.Apply(tags ?? Tags);
    }

    [Theory]
    [InlineData("docker.io/library/**:1.2*", "docker.io", "library/**", "1.2*")]
    [InlineData("nginx:1.27.*", "docker.io", "library/nginx", "1.27.*")]
    [InlineData("registry.test:5000/team/*", "registry.test:5000", "team/*", null)]
    [InlineData("localhost/a/b:v?", "localhost", "a/b", "v?")]
    [InlineData("helm:jetstack/cert-*@v1.*", "jetstack", "cert-*", "v1.*")]
    public void SelectPattern_SplitsRegistryRepositoryAndTag(string pattern, string registry, string repository, string? tag)
    {
        Assert.True(SelectPattern.TryParse(pattern, out var rule, out var error), error);
        Assert.True(SelectionTarget.TryParse(rule!.Repository, out var target, out _));
        Assert.Equal((registry, repository, tag), (target!.Registry, target.Repository.Pattern, rule.Tag));
    }

    [Theory]
    [InlineData("Docker.io/x")]
    [InlineData("docker.io/UPPER")]
    [InlineData("*.io/x")]
    [InlineData("docker.io/a//b")]
    [InlineData("helm:/chart")]
    [InlineData("docker.io/x:")]
    public void SelectPattern_RejectsWhatIsNoPattern(string pattern) => Assert.False(SelectPattern.TryParse(pattern, out _, out _));

    [Fact]
    public void IncludeRegex_IsAnchored_NotASubstringMatch()
    {
        // zot's unanchored "4.*" would take 14.0 and 1.27.3-alpine... too.
        Assert.Equal(["4.0"], Apply(new SelectionRule { Repository = "docker.io/x/y", Include = ["4.*"] }));
    }

    [Fact]
    public void Exclude_DropsWhatMatches_AfterInclude()
    {
        // Not versions: newest first is the upstream's order reversed.
        Assert.Equal(["nightly-20240101", "nightly-20240102"],
            Apply(new SelectionRule { Repository = "docker.io/x/y", Include = ["nightly-.*", "stable"], Exclude = ["stable"] }));
    }

    [Fact]
    public void Semver_ComparesAsVersions_AndLeavesPrereleasesOutUnlessAsked()
    {
        Assert.Equal(["v1.29.0", "1.28.0", "1.27.3", "1.27.1", "1.27.0"], Apply(new SelectionRule { Repository = "docker.io/x/y", Semver = ">=1.27 <2" }));
        Assert.Equal(["2.0.0", "v1.29.0", "1.28.0"], Apply(new SelectionRule { Repository = "docker.io/x/y", Semver = ">=1.28.0 <3", Newest = 3 }));
        Assert.Equal(["2.0.0", "2.0.0-rc.1"], Apply(new SelectionRule { Repository = "docker.io/x/y", Semver = "^2.0.0-0", Prereleases = true }));
        Assert.Equal(["1.27.3", "1.27.3-alpine", "1.27.1"], Apply(new SelectionRule { Repository = "docker.io/x/y", Semver = "~1.27.1", Prereleases = true }));
        // "1.10" > "1.9" as versions, not as strings.
        Assert.Equal(["1.10.0"], Apply(new SelectionRule { Repository = "docker.io/x/y", Semver = ">1.9", Newest = 1 }, ["1.9.0", "1.10.0", "1.2.0"]));
    }

    [Fact]
    public void Newest_ByVersion_OrByUpstreamOrderWhenTagsAreNotVersions()
    {
        Assert.Equal(["14.0", "4.0"], Apply(new SelectionRule { Repository = "docker.io/x/y", Tag = "*.0", Newest = 2 }));
        // Not all versions: the upstream's last is the newest.
        Assert.Equal(["nightly-20240101", "nightly-20240102"], Apply(new SelectionRule { Repository = "docker.io/x/y", Tag = "nightly-*", Newest = 2 }));
        Assert.Equal(["stable"], Apply(new SelectionRule { Repository = "docker.io/x/y", Include = ["latest", "stable"], Newest = 1 }));
    }

    [Fact]
    public void RulesFile_ReadsEveryKey()
    {
        const string Text = """
            repositories: [registry.test/team/app, registry.test/team/tool]
            rules:
              - repository: registry.test/team/*
                tags:
                  include: ['1\.2[0-9]\..*']
                  exclude: ['.*-alpine']
                semver: ">=1.27, <2"
                newest: 3
                platforms: [linux/amd64, linux/arm64]
              - repository: helm:jetstack/cert-manager
                semver: ^1.14
                prereleases: true
                platforms: all
            """;
        Assert.True(SelectionSpec.TryCreate(["nginx:1.27.*"], "rules.yaml", Text, out var spec, out var errors), string.Join("\n", errors));
        Assert.Equal(3, spec!.Rules.Count);
        var rule = spec.Rules[1].Source;
        Assert.Equal(("registry.test/team/*", 3, ">=1.27, <2"), (rule.Repository, rule.Newest, rule.Semver));
        Assert.Equal(["1\\.2[0-9]\\..*"], rule.Include);
        Assert.Equal(["linux/amd64", "linux/arm64"], rule.Platforms);
        Assert.Equal(SelectionKind.Chart, spec.Rules[2].Target.Kind);
        Assert.True(spec.Rules[2].Source.Prereleases);
        Assert.Equal(["registry.test/team/app", "registry.test/team/tool"], spec.Repositories.Select(r => r.ToString()));
        var record = spec.ToRecord(DateTimeOffset.UnixEpoch);
        Assert.Equal("--select nginx:1.27.*", record.Sources[0]);
        Assert.StartsWith("--rules rules.yaml sha256:", record.Sources[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rules: []", "rules: a list of at least one rule")]
    [InlineData("rules:\n  - tag: x", "line 2: rules[1].repository: required")]
    [InlineData("rules:\n  - repository: docker.io/a\n    newest: many", "line 3: rules[1].newest: 'many' is not a whole number")]
    [InlineData("rules:\n  - repository: docker.io/a\n    semver: '>=banana'", "rules[1].semver: '>=banana' is not a version range")]
    [InlineData("rules:\n  - repository: docker.io/a\n    tags: {include: ['(']}", "rules[1].tags.include: '(' is not a regular expression")]
    [InlineData("rules:\n  - repository: docker.io/a\n    colour: red", "line 3: rules[1].colour: unknown key")]
    [InlineData("rules:\n  - repository: [docker.io/a", "not valid YAML")]
    public void RulesFile_Errors_NameTheLineAndKey(string text, string expected)
    {
        Assert.False(SelectionSpec.TryCreate([], "r.yaml", text, out _, out var errors));
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(null, "1.2.0")]
    [InlineData("1.1.0", "1.1.0")]
    [InlineData(">=1.0,<1.2", "1.1.0")]
    [InlineData("^2.0.0-0", "2.0.0-rc.1")]
    [InlineData("v0.9.0-weird", "v0.9.0-weird")]
    [InlineData(">=3", null)]
    public void ChartReference_ResolvesExactVersionsAndRanges(string? version, string? expected)
    {
        var reference = new ChartReference("repo", "chart", version);
        Assert.Equal(expected, reference.Resolve(["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "v0.9.0-weird"], out _));
    }
}

public sealed class PinSetCompatibilityTests
{
    [Fact]
    public void PinFile_WrittenBeforeSelections_StillReads_AndOneWithASelectionRoundTrips()
    {
        const string Old = """{"name":"default","images":["docker.io/library/nginx:1.27"],"platforms":"all","updatedAt":"2026-01-02T03:04:05+00:00","digests":["sha256:aa"]}""";
        var set = System.Text.Json.JsonSerializer.Deserialize(Old, MirrorProxy.WarmUp.PinJsonContext.Default.PinSet)!;
        Assert.Equal(["docker.io/library/nginx:1.27"], set.Images);
        Assert.Null(set.Selection);
        Assert.DoesNotContain("selection", System.Text.Json.JsonSerializer.Serialize(set, MirrorProxy.WarmUp.PinJsonContext.Default.PinSet), StringComparison.Ordinal);

        var selected = set with { Selection = new SelectionRecord(["--select nginx:1.*"], [new SelectionRule { Repository = "docker.io/library/nginx", Tag = "1.*", Newest = 2 }], DateTimeOffset.UnixEpoch) };
        var again = System.Text.Json.JsonSerializer.Deserialize(System.Text.Json.JsonSerializer.Serialize(selected, MirrorProxy.WarmUp.PinJsonContext.Default.PinSet), MirrorProxy.WarmUp.PinJsonContext.Default.PinSet)!;
        Assert.Equal(("docker.io/library/nginx", "1.*", 2), (again.Selection!.Rules[0].Repository, again.Selection.Rules[0].Tag, again.Selection.Rules[0].Newest));
    }
}
