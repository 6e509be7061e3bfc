using System.CommandLine;
using System.Text.Json;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// Selection rules (<c>--select</c>, <c>--rules</c>, <c>--dry-run</c>) of warm and check against a real registry
/// (distribution) holding many tags: versions, pre-releases, variants and tags that are no version, in several
/// repositories; through a real mirror, with the upstream up and then gone.
/// </summary>
public sealed class SelectionTests : IAsyncLifetime
{
    private const string Registry = "registry.test";

    private static readonly string[] AppTags =
    [
        "1.26.0", "1.27.0", "1.27.1", "1.27.3", "1.27.3-alpine", "1.28.0", "v1.29.0", "2.0.0-rc.1", "2.0.0", "latest", "stable", "nightly-20240101", "nightly-20240102",
    ];

    private readonly TempDirectory _work = new("selection");
    private TestRegistry _registry = null!;
    private TestImage _image = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        // One image, pushed once and tagged many times (distribution shares the blobs).
        _image = await OciImageFactory.PushDockerImageAsync(_registry, "sel/app", AppTags[0], "selection");
        foreach (var (repository, tags) in new[] { ("sel/app", AppTags[1..]), ("sel/tool", new[] { "3.1.0", "3.2.0", "3.2.1", "latest" }), ("sel/team/deep", new[] { "0.1.0", "0.2.0" }) })
        {
            foreach (var blob in _image.Blobs.Where(_ => repository != "sel/app"))
            {
                await OciImageFactory.PushBlobAsync(_registry.BaseUri, repository, blob.Content, (RegistryCredentials?)null);
            }

            foreach (var tag in tags)
            {
                await OciImageFactory.PushManifestAsync(_registry.BaseUri, repository, tag, _image.MediaType, _image.ManifestBytes, (RegistryCredentials?)null);
            }
        }
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private Task<MirrorServer> StartMirrorAsync() => MirrorServer.StartAsync(_work.Combine("cache"), [(Registry, _registry.BaseUri)], new Dictionary<string, string?>
    {
        // The registry is only ever stopped (connections refused at once): a request may take its time otherwise.
        ["MirrorProxy:Upstreams:0:ConnectTimeout"] = "00:00:01",
        ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
    });

    private static async Task<(int Exit, string Output, string Error)> RunCliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private string RulesFile(string yaml)
    {
        var file = _work.Combine(Guid.NewGuid().ToString("N") + ".yaml");
        File.WriteAllText(file, yaml);
        return file;
    }

    [Fact]
    public async Task DryRun_SelectGlob_ListsMatchingTagsNewestFirst_OnePerLine()
    {
        await using var mirror = await StartMirrorAsync();

        var (exit, output, error) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--select", $"{Registry}/sel/app:1.27.*", "--dry-run");

        Assert.True(exit == 0, output + error);
        Assert.Equal(
            [$"{Registry}/sel/app:1.27.3", $"{Registry}/sel/app:1.27.3-alpine", $"{Registry}/sel/app:1.27.1", $"{Registry}/sel/app:1.27.0"],
            Lines(output));
        Assert.Contains("selection: 4 references from 1 rules", error, StringComparison.Ordinal);
        // A dry run pulls nothing.
        Assert.Equal(0, await _registry.CountRequestsAsync("GET", "/manifests/"));
    }

    [Fact]
    public async Task DryRun_Rules_AnchoredRegexesSemverAndNewest_WildcardMatchesNamedAndSeenRepositories()
    {
        await using var mirror = await StartMirrorAsync();
        var rules = RulesFile($"""
            repositories: [{Registry}/sel/tool]
            rules:
              - repository: {Registry}/sel/**
                semver: ">=1.27 <4"
                tags: {"{"} exclude: ['.*-alpine'] {"}"}
                newest: 2
              - repository: {Registry}/sel/app
                tags:
                  include: ['nightly-.*', 'stable']
                  exclude: ['stable']
              - repository: {Registry}/sel/app
                tags: {"{"} include: ['2.*'] {"}"}
            """);

        var (exit, output, error) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--rules", rules, "--dry-run");

        Assert.True(exit == 0, output + error);
        // sel/app is not named and the mirror has seen none of its tags yet: the wildcard finds sel/tool alone.
        // '2.*' is anchored: 2.0.0 and 2.0.0-rc.1, not 1.27.3-alpine or 1.28.0.
        Assert.Equal(
            [
                $"{Registry}/sel/tool:3.2.1", $"{Registry}/sel/tool:3.2.0",
                $"{Registry}/sel/app:nightly-20240102", $"{Registry}/sel/app:nightly-20240101",
                $"{Registry}/sel/app:2.0.0", $"{Registry}/sel/app:2.0.0-rc.1",
            ],
            Lines(output));

        // Once the mirror holds tags of sel/app and sel/team/deep, the wildcard takes them too.
        Assert.Equal(HttpStatusCodeOk, (int)(await mirror.Client.GetAsync($"/v2/sel/app/manifests/1.27.0?ns={Registry}")).StatusCode);
        Assert.Equal(HttpStatusCodeOk, (int)(await mirror.Client.GetAsync($"/v2/sel/team/deep/manifests/0.1.0?ns={Registry}")).StatusCode);
        using (var seen = JsonDocument.Parse(await mirror.Client.GetStringAsync($"/admin/repositories?upstream={Registry}")))
        {
            Assert.Equal(["sel/app", "sel/team/deep"], seen.RootElement.GetProperty("repositories").EnumerateArray().Select(r => r.GetString()).Order());
            Assert.False(seen.RootElement.GetProperty("truncated").GetBoolean());
        }

        (exit, output, error) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--rules", rules, "--dry-run");
        Assert.True(exit == 0, output + error);
        Assert.Equal(
            [$"{Registry}/sel/app:2.0.0", $"{Registry}/sel/app:v1.29.0", $"{Registry}/sel/tool:3.2.1", $"{Registry}/sel/tool:3.2.0"],
            Lines(output).Take(4));
        Assert.DoesNotContain(Lines(output), l => l.Contains("sel/team/deep", StringComparison.Ordinal)); // 0.x is outside the range
    }

    private const int HttpStatusCodeOk = 200;

    [Fact]
    public async Task Warm_WithSelection_PinsTheImagesAndRecordsTheRules_ThenCheckPasses()
    {
        await using var mirror = await StartMirrorAsync();
        var rules = RulesFile($"""
            rules:
              - repository: {Registry}/sel/tool
                semver: ^3.2
                platforms: [linux/amd64]
            """);

        var (exit, output, error) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--rules", rules, "--select", $"{Registry}/sel/app:1.28.*", "--pin-set", "selected");

        Assert.True(exit == 0, output + error);
        Assert.Contains("summary: 3 images, 3 warmed", output, StringComparison.Ordinal);
        using var pins = JsonDocument.Parse(await mirror.Client.GetStringAsync("/admin/pins/selected"));
        var root = pins.RootElement;
        Assert.Equal([$"{Registry}/sel/app:1.28.0", $"{Registry}/sel/tool:3.2.1", $"{Registry}/sel/tool:3.2.0"], root.GetProperty("images").EnumerateArray().Select(i => i.GetString()));
        Assert.Equal("linux/amd64", root.GetProperty("platforms").GetString());
        var selection = root.GetProperty("selection");
        Assert.Equal($"--select {Registry}/sel/app:1.28.*", selection.GetProperty("sources")[0].GetString());
        Assert.StartsWith($"--rules {rules} sha256:", selection.GetProperty("sources")[1].GetString(), StringComparison.Ordinal);
        var recorded = selection.GetProperty("rules").EnumerateArray().ToList();
        Assert.Equal(2, recorded.Count);
        Assert.Equal(($"{Registry}/sel/app", "1.28.*"), (recorded[0].GetProperty("repository").GetString(), recorded[0].GetProperty("tag").GetString()));
        Assert.Equal(($"{Registry}/sel/tool", "^3.2"), (recorded[1].GetProperty("repository").GetString(), recorded[1].GetProperty("semver").GetString()));
        Assert.Contains(_image.Layers.First().Digest, root.GetProperty("digests").EnumerateArray().Select(d => d.GetString()));

        (exit, output, error) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--rules", rules, "--select", $"{Registry}/sel/app:1.28.*");
        Assert.True(exit == 0, output + error);
        Assert.Contains("3 images checked for linux/amd64: 3 complete, 0 missing", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpstreamDown_SelectionUsesTheCachedListing_AndTheOutputSaysSo()
    {
        await using var mirror = await StartMirrorAsync();
        var (exit, before, error) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--select", $"{Registry}/sel/app:nightly-*", "--select", $"{Registry}/sel/tool", "--dry-run");
        Assert.True(exit == 0, before + error);
        Assert.DoesNotContain("cached listing", error, StringComparison.Ordinal);

        await _registry.StopAsync();
        (exit, var after, error) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--select", $"{Registry}/sel/app:nightly-*", "--select", $"{Registry}/sel/tool", "--dry-run");

        Assert.True(exit == 0, after + error);
        Assert.Equal(Lines(before), Lines(after));
        Assert.Equal(6, Lines(after).Length);
        Assert.Contains($"selection: {Registry}/sel/app: upstream unavailable, tags from the mirror's cached listing", error, StringComparison.Ordinal);
        Assert.Contains($"selection: {Registry}/sel/tool: upstream unavailable, tags from the mirror's cached listing", error, StringComparison.Ordinal);

        // Never listed: nothing to fall back on, and check says so and fails.
        (exit, var output, error) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--select", $"{Registry}/sel/team/deep");
        Assert.Equal(1, exit);
        Assert.Contains($"selection: FAILED {Registry}/sel/team/deep: cannot list tags: the upstream is unavailable and the mirror has no cached listing", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resolver_FollowsLinkPages_ThroughTheMirror()
    {
        await using var mirror = await StartMirrorAsync();
        Assert.True(MirrorProxy.Selection.SelectionSpec.TryCreate([$"{Registry}/sel/app"], null, null, out var spec, out var errors), string.Join("; ", errors));

        // Four tags a page: distribution paginates, the mirror passes its Link on, rewritten to itself.
        var result = await new MirrorProxy.Selection.SelectionResolver(mirror.Client, null, pageSize: 4).ResolveAsync(spec!, CancellationToken.None);

        Assert.Equal(AppTags.Order(StringComparer.Ordinal), result.References.Select(r => r[(r.LastIndexOf(':') + 1)..]).Order(StringComparer.Ordinal));
        Assert.Equal(4, await _registry.CountRequestsAsync("GET", "/v2/sel/app/tags/list"));
    }

    [Fact]
    public async Task BadRules_AreAUsageError_NamingTheLine()
    {
        await using var mirror = await StartMirrorAsync();
        var rules = RulesFile("rules:\n  - repository: registry.test/sel/app\n    newest: -1\n");

        var (exit, _, error) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--rules", rules);

        Assert.Equal(2, exit);
        Assert.True(error.Contains("line 2: rules[1].newest: must be 1 or more", StringComparison.Ordinal), error);

        (exit, _, error) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString());
        Assert.Equal(1, exit); // System.CommandLine's own usage error
        Assert.Contains("give --images, --select or --rules", error, StringComparison.Ordinal);
    }
}
