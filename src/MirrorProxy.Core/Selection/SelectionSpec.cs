using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.Selection;

/// <summary>
/// The rules of one run (every <c>--select</c> pattern and the rules file), compiled, with the repository names
/// given for wildcards; and the record of them that a pin set keeps.
/// </summary>
internal sealed class SelectionSpec
{
    private SelectionSpec(IReadOnlyList<CompiledRule> rules, IReadOnlyList<SelectionTarget> repositories, IReadOnlyList<string> sources, IReadOnlyList<string> repositoryNames)
    {
        Rules = rules;
        Repositories = repositories;
        Sources = sources;
        RepositoryNames = repositoryNames;
    }

    public IReadOnlyList<CompiledRule> Rules { get; }

    /// <summary>Repositories named for wildcards (the rules file's top level), parsed.</summary>
    public IReadOnlyList<SelectionTarget> Repositories { get; }

    public IReadOnlyList<string> Sources { get; }

    public IReadOnlyList<string> RepositoryNames { get; }

    public bool IsEmpty => Rules.Count == 0;

    public SelectionRecord ToRecord(DateTimeOffset resolvedAt) =>
        new(Sources, [.. Rules.Select(r => r.Source)], resolvedAt) { Repositories = RepositoryNames.Count == 0 ? null : RepositoryNames };

    /// <summary>
    /// Builds the spec from <c>--select</c> patterns and a rules file's text (null when none was given). Errors name
    /// the pattern or the file's line.
    /// </summary>
    public static bool TryCreate(IReadOnlyList<string> patterns, string? rulesFileName, string? rulesText, out SelectionSpec? spec, out List<string> errors)
    {
        spec = null;
        errors = [];
        var rules = new List<SelectionRule>();
        var sources = new List<string>();
        foreach (var pattern in patterns)
        {
            if (SelectPattern.TryParse(pattern, out var rule, out var error))
            {
                rules.Add(rule!);
                sources.Add("--select " + pattern.Trim());
            }
            else
            {
                errors.Add("--select " + error);
            }
        }

        IReadOnlyList<string> names = [];
        if (rulesText is not null)
        {
            if (SelectionRulesReader.TryRead(rulesText, out var file, out var fileErrors))
            {
                rules.AddRange(file!.Rules);
                names = file.Repositories;
                var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(rulesText)));
                sources.Add($"--rules {rulesFileName} sha256:{hash}");
            }
            else
            {
                errors.AddRange(fileErrors.Select(e => $"--rules {rulesFileName}: {e}"));
            }
        }

        var repositories = new List<SelectionTarget>();
        foreach (var name in names)
        {
            if (SelectionTarget.TryParse(name, out var target, out var error) && target!.Repository.IsLiteral)
            {
                repositories.Add(target);
            }
            else
            {
                errors.Add($"--rules {rulesFileName}: repositories: '{name}' is not a repository name{(error.Length > 0 ? ": " + error : "")}");
            }
        }

        var compiled = new List<CompiledRule>();
        for (var i = 0; i < rules.Count; i++)
        {
            if (CompiledRule.TryCompile(rules[i], i + 1, out var rule, out var ruleErrors))
            {
                compiled.Add(rule!);
            }
            else
            {
                errors.AddRange(ruleErrors.Select(e => $"rule {i + 1} ({rules[i].Repository}): {e}"));
            }
        }

        if (errors.Count > 0)
        {
            return false;
        }

        spec = new SelectionSpec(compiled, repositories, sources, names);
        return true;
    }
}
