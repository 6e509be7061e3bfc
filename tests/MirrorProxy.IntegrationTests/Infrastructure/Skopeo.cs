namespace MirrorProxy.IntegrationTests.Infrastructure;

internal sealed class SkopeoCopyOptions
{
    /// <summary><c>--src-creds user:pass</c>.</summary>
    public RegistryCredentials? SourceCredentials { get; init; }

    /// <summary><c>--dest-creds user:pass</c>.</summary>
    public RegistryCredentials? DestinationCredentials { get; init; }

    /// <summary>Inserted before the two references, e.g. <c>["--preserve-digests"]</c> or <c>["--override-arch", "arm64"]</c>.</summary>
    public IReadOnlyList<string>? ExtraArgs { get; init; }

    public TimeSpan? Timeout { get; init; }
}

/// <summary>
/// skopeo 1.9 helpers, isolated from the host configuration: permissive policy, empty auth file and empty
/// registries.conf in a private temp dir; TLS verification off (all registries here are plain-http loopback).
/// </summary>
internal static class Skopeo
{
    public const string Executable = "skopeo";

    private static readonly TimeSpan s_defaultTimeout = TimeSpan.FromSeconds(120);
    private static readonly Lazy<string> s_configDirectory = new(CreateConfigDirectory, LazyThreadSafetyMode.ExecutionAndPublication);

    private static string PolicyPath => Path.Combine(s_configDirectory.Value, "policy.json");

    private static string AuthFilePath => Path.Combine(s_configDirectory.Value, "auth.json");

    private static string RegistriesConfPath => Path.Combine(s_configDirectory.Value, "registries.conf");

    /// <summary>
    /// <c>skopeo copy [--all] --src-tls-verify=false --dest-tls-verify=false &lt;src&gt; &lt;dst&gt;</c> (bounded, default 120 s).
    /// References need a transport (<c>docker://</c>, <c>oci:</c>, <c>dir:</c>…); a bare <c>host/repo:tag</c> gets <c>docker://</c>.
    /// Failures are returned, not thrown; call <see cref="ProcessResult.EnsureSuccess"/>.
    /// </summary>
    public static Task<ProcessResult> CopyAsync(string source, string destination, bool all, CancellationToken cancellationToken = default)
        => CopyAsync(source, destination, all, new SkopeoCopyOptions(), cancellationToken);

    public static Task<ProcessResult> CopyAsync(string source, string destination, bool all, SkopeoCopyOptions options, CancellationToken cancellationToken = default)
    {
        var args = new List<string> { "copy", "--authfile", AuthFilePath, "--src-tls-verify=false", "--dest-tls-verify=false" };
        if (all)
        {
            args.Add("--all");
        }

        if (options.SourceCredentials is { } sourceCredentials)
        {
            args.Add("--src-creds");
            args.Add(sourceCredentials.UserColonPassword);
        }

        if (options.DestinationCredentials is { } destinationCredentials)
        {
            args.Add("--dest-creds");
            args.Add(destinationCredentials.UserColonPassword);
        }

        args.AddRange(options.ExtraArgs ?? []);
        args.Add(WithTransport(source));
        args.Add(WithTransport(destination));
        return RunAsync(args, options.Timeout ?? s_defaultTimeout, cancellationToken);
    }

    /// <summary><c>skopeo inspect --raw --tls-verify=false docker://…</c>: the exact manifest bytes the registry served (throws on failure).</summary>
    public static Task<byte[]> InspectRawAsync(string dockerReference, CancellationToken cancellationToken = default)
        => InspectRawAsync(dockerReference, credentials: null, cancellationToken);

    /// <summary>As above with <c>--creds user:pass</c>.</summary>
    public static async Task<byte[]> InspectRawAsync(string dockerReference, RegistryCredentials? credentials, CancellationToken cancellationToken = default)
    {
        var result = await InspectRawResultAsync(dockerReference, credentials, cancellationToken).ConfigureAwait(false);
        return result.EnsureSuccess().StandardOutputBytes;
    }

    /// <summary>Like <see cref="InspectRawAsync(string, RegistryCredentials?, CancellationToken)"/> but returns the process result (for asserting failures). Bounded by 60 s.</summary>
    public static Task<ProcessResult> InspectRawResultAsync(string dockerReference, RegistryCredentials? credentials, CancellationToken cancellationToken = default)
    {
        var args = new List<string> { "inspect", "--raw", "--tls-verify=false", "--authfile", AuthFilePath };
        if (credentials is not null)
        {
            args.Add("--creds");
            args.Add(credentials.UserColonPassword);
        }

        args.Add(WithTransport(dockerReference));
        return RunAsync(args, TimeSpan.FromSeconds(60), cancellationToken);
    }

    /// <summary>Runs skopeo with the isolated global options (<c>--policy</c>, registries.conf) prepended.</summary>
    public static Task<ProcessResult> RunAsync(IEnumerable<string> args, TimeSpan timeout, CancellationToken cancellationToken = default)
        => ProcessRunner.RunAsync(
            Executable,
            ["--policy", PolicyPath, .. args],
            timeout,
            new ProcessRunOptions
            {
                Environment = new Dictionary<string, string?>
                {
                    ["CONTAINERS_REGISTRIES_CONF"] = RegistriesConfPath,
                    ["REGISTRY_AUTH_FILE"] = AuthFilePath,
                    ["HTTP_PROXY"] = null,
                    ["HTTPS_PROXY"] = null,
                    ["http_proxy"] = null,
                    ["https_proxy"] = null,
                },
            },
            cancellationToken);

    private static string WithTransport(string reference)
        => reference.StartsWith("docker://", StringComparison.Ordinal)
           || reference.StartsWith("oci:", StringComparison.Ordinal)
           || reference.StartsWith("oci-archive:", StringComparison.Ordinal)
           || reference.StartsWith("dir:", StringComparison.Ordinal)
           || reference.StartsWith("docker-archive:", StringComparison.Ordinal)
            ? reference
            : "docker://" + reference;

    private static string CreateConfigDirectory()
    {
        // Shared by all skopeo calls of this test run; deleted when the test process exits.
        var directory = Path.Combine(Path.GetTempPath(), "skopeo-cfg-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "policy.json"), """{"default":[{"type":"insecureAcceptAnything"}]}""");
        File.WriteAllText(Path.Combine(directory, "auth.json"), """{"auths":{}}""");
        File.WriteAllText(Path.Combine(directory, "registries.conf"), "unqualified-search-registries = []\n");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => ShortTempDirectory.DeleteBestEffort(directory);
        return directory;
    }
}
