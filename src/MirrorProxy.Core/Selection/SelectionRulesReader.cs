using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MirrorProxy.Selection;

/// <summary>A rules file as read: the rules and the repository names given for wildcards.</summary>
internal sealed record SelectionRulesFile(IReadOnlyList<SelectionRule> Rules, IReadOnlyList<string> Repositories);

/// <summary>
/// Reads a rules file (YAML). YamlDotNet parses it into its node model, which involves no reflection (the Native
/// AOT build stays warning-free, where its reflection-based deserializer would not); this class maps the few shapes a
/// rules file has onto <see cref="SelectionRule"/>, and every error names the line and the key:
/// <code>
/// repositories: [docker.io/library/nginx, docker.io/library/redis]   # for wildcards, besides what the mirror has seen
/// rules:
///   - repository: docker.io/library/*
///     tags: { include: ['1\.2[0-9]\..*'], exclude: ['.*-rc.*'] }
///     semver: "&gt;=1.27 &lt;2"
///     newest: 3
///     platforms: [linux/amd64, linux/arm64]
/// </code>
/// </summary>
internal static class SelectionRulesReader
{
    /// <summary>A rules file is a handful of lines; a larger one is a mistake (the wrong file).</summary>
    public const int MaxSize = 1024 * 1024;

    private static readonly string[] TopLevelKeys = ["rules", "repositories"];
    private static readonly string[] RuleKeys = ["repository", "tag", "tags", "semver", "prereleases", "newest", "platforms", "repositories"];

    public static bool TryRead(string text, out SelectionRulesFile? file, out List<string> errors)
    {
        file = null;
        errors = [];
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode mapping)
            {
                errors.Add("line 1: a rules file is one YAML mapping with 'rules:' (and optionally 'repositories:')");
                return false;
            }

            root = mapping;
        }
        catch (YamlException ex)
        {
            errors.Add($"line {ex.Start.Line}: not valid YAML: {ex.Message}");
            return false;
        }

        CheckKeys(root, TopLevelKeys, "", errors);
        var repositories = Strings(root, "repositories", "repositories", errors) ?? [];
        var rules = new List<SelectionRule>();
        if (Child(root, "rules") is not YamlSequenceNode sequence || sequence.Children.Count == 0)
        {
            errors.Add($"line {root.Start.Line}: rules: a list of at least one rule is required");
        }
        else
        {
            for (var i = 0; i < sequence.Children.Count; i++)
            {
                if (ReadRule(sequence.Children[i], $"rules[{i + 1}]", errors) is { } rule)
                {
                    rules.Add(rule);
                }
            }
        }

        if (errors.Count > 0)
        {
            return false;
        }

        file = new SelectionRulesFile(rules, repositories);
        return true;
    }

    private static SelectionRule? ReadRule(YamlNode node, string key, List<string> errors)
    {
        if (node is not YamlMappingNode mapping)
        {
            errors.Add($"line {node.Start.Line}: {key}: a rule is a mapping with at least 'repository:'");
            return null;
        }

        var before = errors.Count;
        CheckKeys(mapping, RuleKeys, key + ".", errors);
        var repository = Scalar(mapping, "repository", $"{key}.repository", errors);
        if (repository is null)
        {
            errors.Add($"line {mapping.Start.Line}: {key}.repository: required (registry/repository-glob, or helm:REPOSITORY/CHART-glob)");
        }

        IReadOnlyList<string>? include = null;
        IReadOnlyList<string>? exclude = null;
        if (Child(mapping, "tags") is { } tags)
        {
            if (tags is YamlMappingNode tagsMapping)
            {
                CheckKeys(tagsMapping, ["include", "exclude"], $"{key}.tags.", errors);
                include = Strings(tagsMapping, "include", $"{key}.tags.include", errors);
                exclude = Strings(tagsMapping, "exclude", $"{key}.tags.exclude", errors);
            }
            else
            {
                errors.Add($"line {tags.Start.Line}: {key}.tags: a mapping with 'include:' and/or 'exclude:' (lists of regular expressions)");
            }
        }

        int? newest = null;
        if (Scalar(mapping, "newest", $"{key}.newest", errors) is { } newestText)
        {
            if (int.TryParse(newestText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
            {
                newest = n;
            }
            else
            {
                errors.Add($"line {Child(mapping, "newest")!.Start.Line}: {key}.newest: '{newestText}' is not a whole number");
            }
        }

        var prereleases = false;
        if (Scalar(mapping, "prereleases", $"{key}.prereleases", errors) is { } prereleaseText && !bool.TryParse(prereleaseText, out prereleases))
        {
            errors.Add($"line {Child(mapping, "prereleases")!.Start.Line}: {key}.prereleases: '{prereleaseText}' is not true or false");
        }

        var rule = new SelectionRule
        {
            Repository = repository ?? "",
            Tag = Scalar(mapping, "tag", $"{key}.tag", errors),
            Include = include,
            Exclude = exclude,
            Semver = Scalar(mapping, "semver", $"{key}.semver", errors),
            Prereleases = prereleases,
            Newest = newest,
            Platforms = Child(mapping, "platforms") is YamlScalarNode one ? [one.Value ?? ""] : Strings(mapping, "platforms", $"{key}.platforms", errors),
            Repositories = Strings(mapping, "repositories", $"{key}.repositories", errors),
        };
        if (errors.Count == before && !CompiledRule.TryCompile(rule, 0, out _, out var ruleErrors))
        {
            errors.AddRange(ruleErrors.Select(e => $"line {mapping.Start.Line}: {key}.{e}"));
        }

        return rule;
    }

    private static void CheckKeys(YamlMappingNode mapping, string[] known, string prefix, List<string> errors)
    {
        foreach (var (keyNode, _) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } name } || !known.Contains(name, StringComparer.Ordinal))
            {
                errors.Add($"line {keyNode.Start.Line}: {prefix}{(keyNode as YamlScalarNode)?.Value}: unknown key (known: {string.Join(", ", known)})");
            }
        }
    }

    private static YamlNode? Child(YamlMappingNode mapping, string key) =>
        mapping.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private static string? Scalar(YamlMappingNode mapping, string key, string path, List<string> errors)
    {
        switch (Child(mapping, key))
        {
            case null:
                return null;
            case YamlScalarNode scalar:
                return scalar.Value;
            case var other:
                errors.Add($"line {other.Start.Line}: {path}: a single value is expected here");
                return null;
        }
    }

    private static List<string>? Strings(YamlMappingNode mapping, string key, string path, List<string> errors)
    {
        switch (Child(mapping, key))
        {
            case null:
                return null;
            case YamlSequenceNode sequence:
                var values = new List<string>();
                foreach (var item in sequence.Children)
                {
                    if (item is YamlScalarNode { Value: { } value })
                    {
                        values.Add(value);
                    }
                    else
                    {
                        errors.Add($"line {item.Start.Line}: {path}: a list of single values is expected here");
                    }
                }

                return values;
            case var other:
                errors.Add($"line {other.Start.Line}: {path}: a list is expected here ([a, b] or one '- item' a line)");
                return null;
        }
    }
}
