using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace MirrorProxy.Coordination;

/// <summary>
/// Coordination of replicas through a Redis-protocol store (Garnet, Redis, Valkey). Section
/// <c>MirrorProxy:Coordination</c>; without <see cref="Redis"/>, each mirror works alone.
/// </summary>
public sealed class CoordinationOptions
{
    public const string SectionName = "MirrorProxy:Coordination";

    /// <summary>A StackExchange.Redis connection string, e.g. <c>garnet.mirror:6379,password=…</c>.</summary>
    public string? Redis { get; set; }

    /// <summary>Prefix of every key the mirror uses (several mirrors can share one store).</summary>
    public string KeyPrefix { get; set; } = "mirrorproxy:";

    /// <summary>How long a lease outlives a holder that stopped renewing it (a replica that died): then another takes over.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Longest a replica waits for another one's download of a blob before it fetches the blob itself.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Time for one request to the store; past it, the store counts as unreachable for that request.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);

    public bool IsEnabled => !string.IsNullOrWhiteSpace(Redis);
}

/// <summary>Checks <see cref="CoordinationOptions"/> at start; every failure names its key.</summary>
internal sealed class CoordinationOptionsValidator : IValidateOptions<CoordinationOptions>
{
    private const string Key = CoordinationOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, CoordinationOptions options)
    {
        if (!options.IsEnabled)
        {
            return ValidateOptionsResult.Success;
        }

        var failures = new List<string>();
        try
        {
            var parsed = ConfigurationOptions.Parse(options.Redis!);
            if (parsed.EndPoints.Count == 0)
            {
                failures.Add($"{Key}:Redis: no host:port in '{Redacted(options.Redis!)}'");
            }
        }
        catch (ArgumentException ex)
        {
            failures.Add($"{Key}:Redis: not a connection string ({ex.Message})");
        }

        if (options.LeaseDuration < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{Key}:LeaseDuration: at least one second, got {options.LeaseDuration}");
        }

        if (options.MaxWait <= TimeSpan.Zero)
        {
            failures.Add($"{Key}:MaxWait: must be positive, got {options.MaxWait}");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout >= options.LeaseDuration / 3)
        {
            failures.Add($"{Key}:Timeout: positive and shorter than a third of LeaseDuration (renewals must fit in it), got {options.Timeout}");
        }

        if (string.IsNullOrEmpty(options.KeyPrefix) || options.KeyPrefix.Any(char.IsWhiteSpace))
        {
            failures.Add($"{Key}:KeyPrefix: a non-empty prefix without spaces is required");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>The connection string without its password, for messages.</summary>
    internal static string Redacted(string connection) =>
        string.Join(',', connection.Split(',').Select(p => p.TrimStart().StartsWith("password=", StringComparison.OrdinalIgnoreCase) ? "password=***" : p));
}
