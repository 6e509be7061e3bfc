using System.CommandLine;
using MirrorProxy.Oci;
using MirrorProxy.Selection;

namespace MirrorProxy.Cli;

/// <summary>
/// <c>--select</c>, <c>--rules</c> and <c>--dry-run</c>, shared by the commands that take a list of images (warm,
/// check, bundle export): the rules are resolved against the mirror and their references join the list from <c>--images</c>,
/// which becomes optional.
/// </summary>
internal sealed class SelectionOptions
{
    private readonly Option<string[]> _select = new("--select")
    {
        Description = "REGISTRY/REPOSITORY-GLOB[:TAG-GLOB], repeatable ('*' within a path segment, '**' across, '?'), e.g. docker.io/library/**:1.2*; " +
            "helm:REPOSITORY/CHART-GLOB[@VERSION-GLOB] for charts. A repository wildcard matches repositories the mirror has seen.",
        AllowMultipleArgumentsPerToken = false,
    };

    private readonly Option<string?> _rules = new("--rules")
    {
        Description = "YAML file of selection rules: repository globs, anchored tag include/exclude regexes, a semver range, the newest N, platforms.",
    };

    private readonly Option<bool> _dryRun = new("--dry-run")
    {
        Description = "Print the references the list and the rules resolve to, one a line, and exit 0 (notes go to standard error).",
    };

    private SelectionOptions()
    {
    }

    /// <summary>Adds the options to <paramref name="command"/>; <paramref name="images"/> is then required only when no rule is given.</summary>
    public static SelectionOptions AddTo(Command command, Option<string> images)
    {
        var options = new SelectionOptions();
        images.Required = false;
        command.Options.Add(options._select);
        command.Options.Add(options._rules);
        command.Options.Add(options._dryRun);
        command.Validators.Add(result =>
        {
            if (result.GetValue(images) is null && (result.GetValue(options._select) ?? []).Length == 0 && result.GetValue(options._rules) is null)
            {
                result.AddError("give --images, --select or --rules (or several of them)");
            }
        });
        return options;
    }

    public SelectionArguments Read(ParseResult parse) =>
        new(parse.GetValue(_select) ?? [], parse.GetValue(_rules), parse.GetValue(_dryRun));

    /// <summary>Reads <c>--images</c> (a file, or - for standard input); empty when it was not given.</summary>
    public static async Task<string?> ReadImagesAsync(string? source, TextWriter error, CancellationToken cancellationToken) =>
        source is null ? "" : await ClientOptions.ReadImagesAsync(source, error, cancellationToken).ConfigureAwait(false);
}

/// <summary>What a run of the selection gave: the list to use, the platforms, the record for a pin set, and whether to stop now.</summary>
/// <param name="Images">The list from <c>--images</c>, then every reference the rules selected (without repeats).</param>
/// <param name="Platforms">The command's platforms, joined by those the rules name.</param>
/// <param name="Record">The rules, for the pin set; null without rules.</param>
/// <param name="Exit">An exit code when the command must stop: after a dry run, or for rules that do not parse.</param>
/// <param name="Failed">A rule could not be resolved (a listing the mirror could not give): the command fails at the end.</param>
internal sealed record SelectionOutcome(IReadOnlyList<string> Images, PlatformSelection Platforms, SelectionRecord? Record, int? Exit, bool Failed);

/// <summary>The selection options as given on one command line.</summary>
internal sealed record SelectionArguments(IReadOnlyList<string> Select, string? RulesFile, bool DryRun)
{
    /// <summary>
    /// Resolves the rules against the mirror <paramref name="mirror"/> talks to, and joins the result to
    /// <paramref name="images"/>. Notes (a cached listing used because the upstream is down, a rule that selects
    /// nothing) are written to <paramref name="output"/> (standard error in a dry run, whose output is the list alone).
    /// </summary>
    public async Task<SelectionOutcome> ApplyAsync(
        HttpClient mirror, IReadOnlyList<string> images, string? platformText, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        PlatformSelection.TryParse(platformText, out var platforms, out _);
        string? rulesText = null;
        if (RulesFile is { } file)
        {
            try
            {
                rulesText = new FileInfo(file).Length > SelectionRulesReader.MaxSize
                    ? throw new IOException($"larger than {SelectionRulesReader.MaxSize} bytes")
                    : await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"--rules: cannot read '{file}': {ex.Message}").ConfigureAwait(false);
                return new SelectionOutcome(images, platforms!, null, 2, true);
            }
        }

        if (!SelectionSpec.TryCreate(Select, RulesFile, rulesText, out var spec, out var errors))
        {
            foreach (var line in errors)
            {
                await error.WriteLineAsync(line).ConfigureAwait(false);
            }

            return new SelectionOutcome(images, platforms!, null, 2, true);
        }

        var notes = DryRun ? error : output;
        if (spec!.IsEmpty)
        {
            return await FinishAsync(images, platforms!, null, false, output).ConfigureAwait(false);
        }

        // A client that carries the admin token (warm, bundle export) asks with it; another (check) with the environment's.
        var adminToken = mirror.DefaultRequestHeaders.Authorization is null ? Environment.GetEnvironmentVariable(WarmCommand.TokenEnvironmentVariable) : null;
        var result = await new SelectionResolver(mirror, adminToken).ResolveAsync(spec, cancellationToken).ConfigureAwait(false);
        foreach (var note in result.Notes)
        {
            await notes.WriteLineAsync((note.IsFailure ? "selection: FAILED " : "selection: ") + note.Text).ConfigureAwait(false);
        }

        await notes.WriteLineAsync($"selection: {result.References.Count} references from {spec.Rules.Count} rules").ConfigureAwait(false);
        var seen = new HashSet<string>(images, StringComparer.Ordinal);
        var all = images.Concat(result.References.Where(seen.Add)).ToList();
        if (result.Platforms is { } rulePlatforms)
        {
            // A rule's platforms are warmed and checked besides the command's own (when it gave --platform).
            var joined = platformText is null ? rulePlatforms : platformText + "," + rulePlatforms;
            platforms = joined.Split(',').Any(p => p.Trim().Equals("all", StringComparison.OrdinalIgnoreCase)) ? PlatformSelection.Everything
                : PlatformSelection.TryParse(string.Join(',', joined.Split(',', StringSplitOptions.TrimEntries).Distinct()), out var union, out _) ? union! : platforms;
        }

        return await FinishAsync(all, platforms!, spec.ToRecord(TimeProvider.System.GetUtcNow()), result.Failed, output).ConfigureAwait(false);
    }

    private async Task<SelectionOutcome> FinishAsync(IReadOnlyList<string> images, PlatformSelection platforms, SelectionRecord? record, bool failed, TextWriter output)
    {
        if (!DryRun)
        {
            return new SelectionOutcome(images, platforms, record, null, failed);
        }

        foreach (var image in images)
        {
            await output.WriteLineAsync(image).ConfigureAwait(false);
        }

        return new SelectionOutcome(images, platforms, record, 0, failed);
    }
}
