using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MirrorProxy.Helm;

namespace MirrorProxy.Selection;

/// <summary>Something worth telling about a resolution; failures make the run fail.</summary>
internal sealed record SelectionNote(bool IsFailure, string Text);

/// <summary>What the rules select now: references in rule order (newest first within a repository), notes, and the platforms the rules name.</summary>
internal sealed record SelectionResult(IReadOnlyList<string> References, IReadOnlyList<SelectionNote> Notes, string? Platforms)
{
    public bool Failed => Notes.Any(n => n.IsFailure);
}

/// <summary>
/// Resolves selection rules against a running mirror, as a client: tags from <c>/v2/&lt;repo&gt;/tags/list?ns=&lt;registry&gt;</c>
/// (following <c>Link</c> pages), which the mirror answers from the upstream, or from its cached listing with a
/// <c>Warning</c> when the upstream is down (the notes say so); chart versions from the mirror's <c>/helm/&lt;repo&gt;/index.yaml</c>.
/// A wildcard in a repository is matched against the repositories the rules file names and those the mirror has seen
/// (<c>/admin/repositories</c>: repositories with cached tags), never against a registry's <c>_catalog</c>, which
/// registries rarely serve to anonymous clients. Used by <c>warm</c>, <c>check</c> and <c>bundle export</c>.
/// </summary>
internal sealed class SelectionResolver
{
    /// <summary>Bounds on what one listing may make the client fetch.</summary>
    private const int MaxPages = 1000;
    private const int MaxTags = 1_000_000;
    private const int Parallelism = 4;

    private readonly HttpClient _mirror;
    private readonly AuthenticationHeaderValue? _admin;
    private readonly int? _pageSize;
    private readonly ConcurrentDictionary<string, Task<(IReadOnlyList<string>? Names, SelectionNote? Note)>> _seen = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task<Listing>> _listings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task<IndexListing>> _indexes = new(StringComparer.Ordinal);

    /// <param name="mirror">A client whose base address is the mirror.</param>
    /// <param name="adminToken">The admin token, for the list of seen repositories from another host (null: the client's own headers).</param>
    /// <param name="pageSize">Tags asked for a page (<c>n</c>); null asks for the whole list, which the mirror then keeps for when the upstream is down.</param>
    public SelectionResolver(HttpClient mirror, string? adminToken, int? pageSize = null)
    {
        _mirror = mirror;
        _pageSize = pageSize;
        _admin = string.IsNullOrEmpty(adminToken) ? null : new AuthenticationHeaderValue("Bearer", adminToken);
    }

    private record Listing(IReadOnlyList<string> Tags, SelectionNote? Note, bool Failed);

    private sealed record IndexListing(IReadOnlyList<string> Tags, IReadOnlyList<(string Name, string Version)> Entries, SelectionNote? Note, bool Failed)
        : Listing(Tags, Note, Failed);

    public async Task<SelectionResult> ResolveAsync(SelectionSpec spec, CancellationToken cancellationToken)
    {
        var references = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var notes = new List<SelectionNote>();
        foreach (var rule in spec.Rules)
        {
            var repositories = await RepositoriesAsync(rule, spec, notes, cancellationToken).ConfigureAwait(false);
            if (repositories.Count == 0)
            {
                continue;
            }

            var listings = new Listing[repositories.Count];
            await Parallel.ForEachAsync(Enumerable.Range(0, repositories.Count), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
                async (i, ct) => listings[i] = await ListAsync(rule.Target, repositories[i], ct).ConfigureAwait(false)).ConfigureAwait(false);

            var selected = 0;
            for (var i = 0; i < repositories.Count; i++)
            {
                var listing = listings[i];
                if (listing.Note is { } note && !notes.Contains(note))
                {
                    notes.Add(note);
                }

                foreach (var tag in rule.Apply(listing.Tags))
                {
                    selected++;
                    var reference = rule.Target.Kind == SelectionKind.Chart
                        ? $"{SelectionTarget.ChartPrefix}{rule.Target.Registry}/{repositories[i]}@{tag}"
                        : $"{rule.Target.Registry}/{repositories[i]}:{tag}";
                    if (seen.Add(reference))
                    {
                        references.Add(reference);
                    }
                }
            }

            if (selected == 0 && listings.All(l => !l.Failed))
            {
                notes.Add(new SelectionNote(false, $"{rule}: no tag matches"));
            }
        }

        var platforms = spec.Rules.Select(r => r.Platforms).Where(p => p is not null).ToList();
        return new SelectionResult(references, notes, platforms.Count == 0 ? null : string.Join(',', platforms));
    }

    /// <summary>The repositories (or charts) a rule applies to, in name order.</summary>
    private async Task<IReadOnlyList<string>> RepositoriesAsync(CompiledRule rule, SelectionSpec spec, List<SelectionNote> notes, CancellationToken cancellationToken)
    {
        var target = rule.Target;
        if (target.Repository.IsLiteral)
        {
            return [target.Repository.Pattern];
        }

        var candidates = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var named in spec.Repositories.Concat((rule.Source.Repositories ?? []).Select(Parse)))
        {
            if (named is not null && named.Kind == target.Kind && named.Registry == target.Registry)
            {
                candidates.Add(named.Repository.Pattern);
            }
        }

        if (target.Kind == SelectionKind.Chart)
        {
            // A classic repository's index lists every chart: the wildcard is matched against it.
            var index = await ListChartsAsync(target.Registry, cancellationToken).ConfigureAwait(false);
            if (index.Note is { } indexNote && !notes.Contains(indexNote))
            {
                notes.Add(indexNote);
            }

            candidates.UnionWith(index.Tags);
        }
        else
        {
            var (names, note) = await _seen.GetOrAdd(target.Registry, registry => SeenAsync(registry, cancellationToken)).ConfigureAwait(false);
            if (note is not null && !notes.Contains(note))
            {
                notes.Add(note);
            }

            candidates.UnionWith(names ?? []);
        }

        var matching = candidates.Where(target.Repository.IsMatch).ToList();
        if (matching.Count == 0)
        {
            notes.Add(new SelectionNote(false, target.Kind == SelectionKind.Chart
                ? $"{rule}: no chart of {target.Registry} matches"
                : $"{rule}: no repository matches among those the rules name and those the mirror has seen (a wildcard never lists a registry's catalog: name repositories under 'repositories:')"));
        }

        return matching;

        static SelectionTarget? Parse(string name) => SelectionTarget.TryParse(name, out var target, out _) ? target : null;
    }

    private Task<Listing> ListAsync(SelectionTarget target, string repository, CancellationToken cancellationToken) =>
        target.Kind == SelectionKind.Chart
            ? ListChartVersionsAsync(target.Registry, repository, cancellationToken)
            : _listings.GetOrAdd(target.Registry + "/" + repository, _ => ListTagsAsync(target.Registry, repository, cancellationToken));

    /// <summary>Every tag of an image repository, following the pages the mirror (or the upstream through it) links.</summary>
    private async Task<Listing> ListTagsAsync(string registry, string repository, CancellationToken cancellationToken)
    {
        var tags = new List<string>();
        var next = $"/v2/{repository}/tags/list?ns={Uri.EscapeDataString(registry)}{(_pageSize is { } n ? "&n=" + n : "")}";
        string? stale = null;
        for (var page = 0; next is not null && page < MaxPages && tags.Count < MaxTags; page++)
        {
            using var response = await _mirror.GetAsync(next, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var why = response.StatusCode switch
                {
                    HttpStatusCode.NotFound => "the registry does not know this repository",
                    HttpStatusCode.ServiceUnavailable => "the upstream is unavailable and the mirror has no cached listing",
                    _ => $"{(int)response.StatusCode} {response.ReasonPhrase}",
                };
                return new Listing(tags, new SelectionNote(true, $"{registry}/{repository}: cannot list tags: {why}"), true);
            }

            stale ??= WarningOf(response);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var document = await JsonDocument.ParseAsync(body, default, cancellationToken).ConfigureAwait(false);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("tags", out var array) && array.ValueKind == JsonValueKind.Array)
            {
                foreach (var tag in array.EnumerateArray())
                {
                    if (tag.GetString() is { Length: > 0 } value)
                    {
                        tags.Add(value);
                    }
                }
            }

            next = NextLink(response);
        }

        return new Listing(tags, stale is null ? null : new SelectionNote(false, $"{registry}/{repository}: upstream unavailable, tags from the mirror's cached listing ({stale})"), false);
    }

    private async Task<Listing> ListChartsAsync(string helmRepository, CancellationToken cancellationToken)
    {
        var index = await _indexes.GetOrAdd(helmRepository, name => ReadIndexAsync(name, cancellationToken)).ConfigureAwait(false);
        return index with { Tags = index.Entries.Select(e => e.Name).Distinct(StringComparer.Ordinal).ToList() };
    }

    private async Task<Listing> ListChartVersionsAsync(string helmRepository, string chart, CancellationToken cancellationToken)
    {
        var index = await _indexes.GetOrAdd(helmRepository, name => ReadIndexAsync(name, cancellationToken)).ConfigureAwait(false);
        return index with { Tags = index.Entries.Where(e => e.Name == chart).Select(e => e.Version).ToList() };
    }

    /// <summary>Every chart version of a Helm repository's index, from the mirror's copy of it.</summary>
    private async Task<IndexListing> ReadIndexAsync(string helmRepository, CancellationToken cancellationToken)
    {
        using var response = await _mirror.GetAsync($"/helm/{helmRepository}/index.yaml", HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return new IndexListing([], [], new SelectionNote(true, $"helm:{helmRepository}: cannot read the index: {(int)response.StatusCode} {response.ReasonPhrase}"), true);
        }

        var stale = WarningOf(response);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var entries = await HelmIndexReader.ReadVersionsAsync(body, cancellationToken).ConfigureAwait(false);
        return new IndexListing([], entries, stale is null ? null : new SelectionNote(false, $"helm:{helmRepository}: upstream unavailable, versions from the mirror's cached index ({stale})"), false);
    }

    /// <summary>The repositories the mirror holds tags of for a registry (an admin endpoint: loopback, or the admin token).</summary>
    private async Task<(IReadOnlyList<string>?, SelectionNote?)> SeenAsync(string registry, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/repositories?upstream={Uri.EscapeDataString(registry)}");
        if (_admin is not null)
        {
            request.Headers.Authorization = _admin;
        }

        using var response = await _mirror.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var why = response.StatusCode == HttpStatusCode.Forbidden
                ? "the list is an admin endpoint: run on the mirror's host, or give the admin token (MIRRORPROXY_ADMIN_TOKEN)"
                : $"{(int)response.StatusCode} {response.ReasonPhrase}";
            return (null, new SelectionNote(true, $"{registry}: cannot read the repositories the mirror has seen: {why}"));
        }

        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var listing = await JsonSerializer.DeserializeAsync(body, SelectionJsonContext.Default.SeenRepositories, cancellationToken).ConfigureAwait(false);
        var note = listing?.Truncated == true
            ? new SelectionNote(false, $"{registry}: the mirror has seen more repositories than it lists at once ({listing.Repositories.Count}); name the others under 'repositories:'")
            : null;
        return (listing?.Repositories ?? [], note);
    }

    private static string? WarningOf(HttpResponseMessage response) =>
        response.Headers.NonValidated.TryGetValues("Warning", out var values) ? values.ToString() : null;

    /// <summary>The target of <c>Link: &lt;…&gt;; rel="next"</c>, as a path on the mirror.</summary>
    internal static string? NextLink(HttpResponseMessage response)
    {
        if (!response.Headers.NonValidated.TryGetValues("Link", out var values))
        {
            return null;
        }

        foreach (var value in values)
        {
            var open = value.IndexOf('<');
            var close = value.IndexOf('>', open + 1);
            if (open >= 0 && close > open && value.AsSpan(close).Contains("rel=\"next\"", StringComparison.OrdinalIgnoreCase))
            {
                var target = value[(open + 1)..close];
                // On Unix "/v2/…" parses as an absolute file URI: only http(s) ones are absolute here.
                return Uri.TryCreate(target, UriKind.Absolute, out var absolute) && absolute.Scheme is "http" or "https" ? absolute.PathAndQuery : target;
            }
        }

        return null;
    }
}
