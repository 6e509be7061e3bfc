using System.Globalization;
using MirrorProxy.Hosting;
using Microsoft.Extensions.Configuration;

namespace MirrorProxy.Cli;

/// <summary>Values given as command-line flags; each overrides its configuration key.</summary>
internal sealed record ServeFlags
{
    public string? ConfigFile { get; init; }

    public string? Listen { get; init; }

    public string? CacheDirectory { get; init; }

    /// <summary><c>NS=URL</c> pairs; when present they replace every configured upstream, and the first is the default.</summary>
    public IReadOnlyList<string> Upstreams { get; init; } = [];

    public int? TagTtlSeconds { get; init; }

    /// <summary>True sets <c>Offline</c>; false leaves the configured value.</summary>
    public bool Offline { get; init; }

    public string? LogFormat { get; init; }

    public string? MaxCacheSize { get; init; }

    public string? TlsCertificate { get; init; }

    public string? TlsKey { get; init; }

    /// <summary><c>NS=FILE</c> pairs: a CA bundle for the upstream named NS (after the upstream list is settled).</summary>
    public IReadOnlyList<string> UpstreamCas { get; init; } = [];

    /// <summary>True sets <c>AccessLog</c>; false leaves the configured value.</summary>
    public bool AccessLog { get; init; }

    /// <summary><c>NAME=URL</c> pairs; when present they replace every configured Helm repository.</summary>
    public IReadOnlyList<string> HelmRepositories { get; init; } = [];
}

/// <summary>Thrown for configuration that cannot even be read (a missing file, a malformed flag).</summary>
internal sealed class ConfigurationLoadException(string message) : Exception(message);

/// <summary>
/// Builds the configuration in layers, lowest first: the embedded defaults, <c>appsettings.json</c> in the working
/// directory, <c>--config FILE</c>, <c>MIRRORPROXY__…</c> environment variables, then flags. The upstream list is
/// taken whole from the highest layer that defines one, so a file listing two upstreams does not inherit the
/// defaults' other four by array index.
/// </summary>
internal static class ConfigurationLoader
{
    private const string UpstreamsPrefix = ServerOptions.SectionName + ":Upstreams";
    private const string DefaultUpstreamKey = ServerOptions.SectionName + ":DefaultUpstream";
    private const string HelmRepositoriesPrefix = ServerOptions.SectionName + ":HelmRepositories";

    public static IConfiguration Load(ServeFlags flags, IDictionary<string, string?>? environment = null)
    {
        var layers = new List<Dictionary<string, string?>>
        {
            Flatten(new ConfigurationBuilder().AddJsonStream(OpenDefaults())),
        };

        var appsettings = Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json");
        if (File.Exists(appsettings))
        {
            layers.Add(Flatten(new ConfigurationBuilder().AddJsonFile(appsettings, optional: false)));
        }

        if (flags.ConfigFile is { } file)
        {
            var full = Path.GetFullPath(file);
            if (!File.Exists(full))
            {
                throw new ConfigurationLoadException($"--config: '{file}' does not exist");
            }

            try
            {
                layers.Add(Flatten(new ConfigurationBuilder().AddJsonFile(full, optional: false)));
            }
            catch (InvalidDataException ex)
            {
                throw new ConfigurationLoadException($"--config: '{file}' is not valid JSON: {ex.InnerException?.Message ?? ex.Message}");
            }
        }

        layers.Add(FromEnvironment(environment ?? ReadEnvironment()));
        layers.Add(FromFlags(flags));

        // The default upstream names an entry of the list, so a layer below the one that set the list cannot choose it.
        var merged = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var upstreamLayer = layers.FindLastIndex(layer => layer.Keys.Any(IsUpstreamKey));
        var helmLayer = layers.FindLastIndex(layer => layer.Keys.Any(IsHelmRepositoryKey));
        for (var i = 0; i < layers.Count; i++)
        {
            foreach (var (key, value) in layers[i])
            {
                if (IsHelmRepositoryKey(key) ? i == helmLayer
                    : IsUpstreamKey(key) ? i == upstreamLayer : !key.Equals(DefaultUpstreamKey, StringComparison.OrdinalIgnoreCase) || i >= upstreamLayer)
                {
                    merged[key] = value;
                }
            }
        }

        ApplyUpstreamCas(flags, merged);
        return new ConfigurationBuilder().AddInMemoryCollection(merged).Build();
    }

    /// <summary>--upstream-ca names an upstream, so it applies to the final list whatever layer set it.</summary>
    private static void ApplyUpstreamCas(ServeFlags flags, Dictionary<string, string?> merged)
    {
        foreach (var pair in flags.UpstreamCas)
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0 || equals == pair.Length - 1)
            {
                throw new ConfigurationLoadException($"--upstream-ca: '{pair}' is not of the form NS=FILE");
            }

            var name = pair[..equals].Trim();
            var nameKey = merged.FirstOrDefault(p => IsUpstreamKey(p.Key) && p.Key.EndsWith(":Name", StringComparison.OrdinalIgnoreCase)
                && string.Equals(p.Value, name, StringComparison.OrdinalIgnoreCase)).Key;
            if (nameKey is null)
            {
                throw new ConfigurationLoadException($"--upstream-ca: no upstream is named '{name}'");
            }

            merged[nameKey[..^":Name".Length] + ":CaFile"] = pair[(equals + 1)..].Trim();
        }
    }

    /// <summary>The Helm repository list, like the upstream list, is taken whole from one layer.</summary>
    private static bool IsHelmRepositoryKey(string key) =>
        key.StartsWith(HelmRepositoriesPrefix + ":", StringComparison.OrdinalIgnoreCase) || key.Equals(HelmRepositoriesPrefix, StringComparison.OrdinalIgnoreCase);

    private static bool IsUpstreamKey(string key) =>
        key.StartsWith(UpstreamsPrefix + ":", StringComparison.OrdinalIgnoreCase) || key.Equals(UpstreamsPrefix, StringComparison.OrdinalIgnoreCase);

    private static Stream OpenDefaults() =>
        typeof(ConfigurationLoader).Assembly.GetManifestResourceStream("MirrorProxy.defaults.json")
        ?? throw new InvalidOperationException("The embedded defaults are missing from the build.");

    private static Dictionary<string, string?> Flatten(IConfigurationBuilder builder)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in builder.Build().AsEnumerable())
        {
            if (value is not null)
            {
                result[key] = value;
            }
        }

        return result;
    }

    private static Dictionary<string, string?> ReadEnvironment()
    {
        var result = new Dictionary<string, string?>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = (string?)entry.Value;
        }

        return result;
    }

    /// <summary><c>MIRRORPROXY__CACHE__PATH=/x</c> becomes <c>MirrorProxy:Cache:Path</c>; <c>MIRRORPROXY__LOGGING__…</c> configures logging.</summary>
    private static Dictionary<string, string?> FromEnvironment(IDictionary<string, string?> environment)
    {
        const string Prefix = "MIRRORPROXY__";
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in environment)
        {
            if (!name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) || value is null)
            {
                continue;
            }

            var key = name[Prefix.Length..].Replace("__", ":", StringComparison.Ordinal);
            result[key.StartsWith("Logging:", StringComparison.OrdinalIgnoreCase) ? key : ServerOptions.SectionName + ":" + key] = value;
        }

        return result;
    }

    private static Dictionary<string, string?> FromFlags(ServeFlags flags)
    {
        const string Root = ServerOptions.SectionName;
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (flags.Listen is not null)
        {
            result[$"{Root}:Listen"] = flags.Listen;
        }

        if (flags.CacheDirectory is not null)
        {
            result[$"{Root}:Cache:Path"] = flags.CacheDirectory;
        }

        if (flags.TagTtlSeconds is { } ttl)
        {
            if (ttl < 0)
            {
                throw new ConfigurationLoadException($"--tag-ttl: must be zero or more seconds, got {ttl}");
            }

            result[$"{Root}:TagTtl"] = TimeSpan.FromSeconds(ttl).ToString("c", CultureInfo.InvariantCulture);
        }

        if (flags.Offline)
        {
            result[$"{Root}:Offline"] = "true";
        }

        if (flags.MaxCacheSize is { } size)
        {
            if (!ByteSize.TryParse(size, out _))
            {
                throw new ConfigurationLoadException($"--max-cache-size: '{size}' is not a size such as 300MB or 20GiB");
            }

            result[$"{Root}:Cache:MaxSize"] = size;
        }

        if (flags.TlsCertificate is not null)
        {
            result[$"{Root}:Tls:CertificateFile"] = flags.TlsCertificate;
        }

        if (flags.TlsKey is not null)
        {
            result[$"{Root}:Tls:KeyFile"] = flags.TlsKey;
        }

        if (flags.AccessLog)
        {
            result[$"{Root}:AccessLog"] = "true";
        }

        if (flags.LogFormat is not null)
        {
            result[$"{Root}:LogFormat"] = flags.LogFormat;
        }

        for (var i = 0; i < flags.Upstreams.Count; i++)
        {
            var pair = flags.Upstreams[i];
            var equals = pair.IndexOf('=');
            if (equals <= 0 || equals == pair.Length - 1)
            {
                throw new ConfigurationLoadException($"--upstream: '{pair}' is not of the form NS=URL (for example docker.io=https://registry-1.docker.io)");
            }

            result[$"{Root}:Upstreams:{i}:Name"] = pair[..equals].Trim();
            result[$"{Root}:Upstreams:{i}:Url"] = pair[(equals + 1)..].Trim();
        }

        for (var i = 0; i < flags.HelmRepositories.Count; i++)
        {
            var pair = flags.HelmRepositories[i];
            var equals = pair.IndexOf('=');
            if (equals <= 0 || equals == pair.Length - 1)
            {
                throw new ConfigurationLoadException($"--helm-repo: '{pair}' is not of the form NAME=URL (for example jetstack=https://charts.jetstack.io)");
            }

            result[$"{Root}:HelmRepositories:{i}:Name"] = pair[..equals].Trim();
            result[$"{Root}:HelmRepositories:{i}:Url"] = pair[(equals + 1)..].Trim();
        }

        return result;
    }
}
