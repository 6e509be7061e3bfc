using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace MirrorProxy.Tests.Deploy;

/// <summary>
/// The files under <c>deploy/</c>: every YAML file parses, the Kubernetes objects the install needs are
/// there, kustomizations name files that exist, containerd's hosts.toml files route to the mirror, and the
/// shell scripts behave as documented when run against stub commands.
/// </summary>
public sealed class DeployManifestTests : IDisposable
{
    private static readonly string RepoRoot = FindRepoRoot();
    private static readonly string DeployDir = Path.Combine(RepoRoot, "deploy");

    private static readonly string[] RequiredKinds =
    [
        "Namespace", "Deployment", "DaemonSet", "Service", "PersistentVolumeClaim", "ConfigMap",
        "Certificate", "CronJob", "ServiceMonitor", "PrometheusRule",
    ];

    private static readonly string[] MirroredRegistries = ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"];

    private readonly string _temp = Directory.CreateTempSubdirectory("mirrorproxy-deploy-tests-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    public static TheoryData<string> YamlFiles() => RelativePaths("*.yaml", "*.yml");

    public static TheoryData<string> KustomizationFiles() => RelativePaths("kustomization.yaml");

    public static TheoryData<string> HostsTomlFiles() => RelativePaths("hosts.toml");

    [Theory]
    [MemberData(nameof(YamlFiles))]
    public void YamlFile_ParsesAndEveryObjectHasKindAndName(string relativePath)
    {
        var documents = LoadYaml(relativePath);

        Assert.NotEmpty(documents);
        foreach (var document in documents)
        {
            var root = Assert.IsType<YamlMappingNode>(document.RootNode);
            if (Scalar(root, "apiVersion") is null || Scalar(root, "kind") is "Kustomization")
            {
                continue;
            }

            Assert.False(string.IsNullOrEmpty(Scalar(root, "kind")), $"{relativePath}: an object without kind");
            Assert.True(root.Children.TryGetValue(new YamlScalarNode("metadata"), out var metadataNode), $"{relativePath}: a {Scalar(root, "kind")} without metadata");
            var metadata = Assert.IsType<YamlMappingNode>(metadataNode);
            Assert.False(string.IsNullOrEmpty(Scalar(metadata, "name")), $"{relativePath}: a {Scalar(root, "kind")} without metadata.name");
        }
    }

    [Fact]
    public void K8sAndMonitoring_HoldEveryKindTheInstallNeeds()
    {
        var kinds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var directory in new[] { "k8s", "monitoring" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(DeployDir, directory), "*.yaml", SearchOption.AllDirectories))
            {
                foreach (var document in LoadYaml(Path.GetRelativePath(DeployDir, file)))
                {
                    if (document.RootNode is YamlMappingNode root && Scalar(root, "kind") is { } kind)
                    {
                        kinds.Add(kind);
                    }
                }
            }
        }

        Assert.Subset(kinds, RequiredKinds.ToHashSet(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(KustomizationFiles))]
    public void Kustomization_EveryReferencedResourcePatchAndComponentExists(string relativePath)
    {
        var directory = Path.GetDirectoryName(Path.Combine(DeployDir, relativePath))!;
        var root = Assert.IsType<YamlMappingNode>(Assert.Single(LoadYaml(relativePath)).RootNode);

        var references = new List<string>();
        foreach (var key in new[] { "resources", "components", "patchesStrategicMerge" })
        {
            references.AddRange(Sequence(root, key).OfType<YamlScalarNode>().Select(node => node.Value!));
        }

        references.AddRange(Sequence(root, "patches").OfType<YamlMappingNode>().Select(patch => Scalar(patch, "path")).OfType<string>());

        Assert.NotEmpty(references);
        foreach (var reference in references)
        {
            var target = Path.GetFullPath(Path.Combine(directory, reference));
            Assert.True(File.Exists(target) || File.Exists(Path.Combine(target, "kustomization.yaml")),
                $"{relativePath} references '{reference}', which is neither a file nor a kustomization directory");
        }
    }

    [Fact]
    public void MirrorConfigurations_AreJsonWithUpstreamsAndTheCacheOnTheVolume()
    {
        var configs = Directory.EnumerateFiles(Path.Combine(DeployDir, "k8s"), "*.yaml", SearchOption.AllDirectories)
            .SelectMany(file => LoadYaml(Path.GetRelativePath(DeployDir, file)))
            .Select(document => document.RootNode)
            .OfType<YamlMappingNode>()
            .Where(root => Scalar(root, "kind") == "ConfigMap")
            .Select(root => root.Children.TryGetValue(new YamlScalarNode("data"), out var data) ? Scalar((YamlMappingNode)data, "mirrorproxy.json") : null)
            .OfType<string>()
            .ToList();

        Assert.NotEmpty(configs);
        foreach (var json in configs)
        {
            using var config = JsonDocument.Parse(json);
            var mirror = config.RootElement.GetProperty("MirrorProxy");
            Assert.Equal("/var/cache/mirrorproxy", mirror.GetProperty("Cache").GetProperty("Path").GetString());
            var names = mirror.GetProperty("Upstreams").EnumerateArray().Select(u => u.GetProperty("Name").GetString()).ToList();
            Assert.Equal(MirroredRegistries, names);
        }
    }

    [Fact]
    public void HostsToml_ExistsForEveryMirroredRegistry()
    {
        foreach (var registry in MirroredRegistries)
        {
            Assert.True(File.Exists(Path.Combine(DeployDir, "containerd", "certs.d", registry, "hosts.toml")), $"no hosts.toml for {registry}");
        }
    }

    [Theory]
    [MemberData(nameof(HostsTomlFiles))]
    public void HostsToml_HasServerAndAMirrorHostThatPullsAndResolves(string relativePath)
    {
        var text = File.ReadAllText(Path.Combine(DeployDir, relativePath));

        Assert.Matches(new Regex("""^server\s*=\s*"https://[^"]+"\s*$""", RegexOptions.Multiline), text);
        var host = Regex.Match(text, """^\[host\."(?<url>https?://[^"]+)"\]\s*$(?<body>(?:\n(?!\[).*)*)""", RegexOptions.Multiline);
        Assert.True(host.Success, $"{relativePath}: no [host.\"...\"] table");
        Assert.Equal("https://mirror.internal:5000", host.Groups["url"].Value);
        var capabilities = Regex.Match(host.Groups["body"].Value, """^\s*capabilities\s*=\s*\[(?<list>[^\]]*)\]""", RegexOptions.Multiline);
        Assert.True(capabilities.Success, $"{relativePath}: the mirror host has no capabilities");
        Assert.Contains("\"pull\"", capabilities.Groups["list"].Value);
        Assert.Contains("\"resolve\"", capabilities.Groups["list"].Value);
        Assert.Matches(new Regex("""^\s*ca\s*=\s*"/etc/containerd/certs.d/mirror-ca.crt"\s*$""", RegexOptions.Multiline), host.Groups["body"].Value);
    }

    [Fact]
    public void ReadinessCheck_AllStubsSucceed_PassesEveryStepAndExitsZero()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 0);

        var result = RunScript("offline-readiness-check.sh", stubs);

        Assert.True(result.ExitCode == 0, result.Describe());
        var lines = result.Lines;
        foreach (var step in new[] { "images", "dns", "time", "certificates", "overall" })
        {
            Assert.Contains(lines, line => line.StartsWith($"PASS {step}: ", StringComparison.Ordinal));
        }

        Assert.DoesNotContain(lines, line => line.StartsWith("FAIL", StringComparison.Ordinal));
        Assert.Contains("PASS dns: mirror.internal -> 10.43.0.50", lines);

        // The mirror is asked the documented way, with kubectl's image list on standard input.
        Assert.Equal("check --server https://mirror.internal:5000 --images - --platform all", File.ReadAllText(Path.Combine(stubs, "mirrorproxy.args")).Trim());
        var stdin = File.ReadAllText(Path.Combine(stubs, "mirrorproxy.stdin"));
        Assert.Contains("docker.io/library/nginx:1.27", stdin);
        Assert.Contains("ghcr.io/org/app:1.0", stdin);
    }

    [Fact]
    public void ReadinessCheck_Charts_AreCheckedWithThePodImages()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 0);

        var result = RunScript("offline-readiness-check.sh", stubs, ("CHARTS", "helm:jetstack/cert-manager@v1.14.4  helm:argo/argo-cd@>=7,<8"));

        Assert.True(result.ExitCode == 0, result.Describe());
        var stdin = File.ReadAllText(Path.Combine(stubs, "mirrorproxy.stdin")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("docker.io/library/nginx:1.27", string.Join(' ', stdin));
        Assert.Equal(["helm:jetstack/cert-manager@v1.14.4", "helm:argo/argo-cd@>=7,<8"], stdin[^2..]);
    }

    [Fact]
    public void ReadinessCheck_MirrorproxyCheckFails_FailsTheImagesStepAndExitsNonZero()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 1);

        var result = RunScript("offline-readiness-check.sh", stubs);

        Assert.True(result.ExitCode != 0, result.Describe());
        var lines = result.Lines;
        Assert.Contains(lines, line => line.StartsWith("FAIL images: ", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.TrimStart().StartsWith("MISSING: ghcr.io/org/app:1.0", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith("FAIL overall: ", StringComparison.Ordinal) && line.Contains("images", StringComparison.Ordinal));
        foreach (var step in new[] { "dns", "time", "certificates" })
        {
            Assert.Contains(lines, line => line.StartsWith($"PASS {step}: ", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void ReadinessCheck_ToolMissing_ReportsTheStepAsFailedNotSkipped()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 0);

        var result = RunScript("offline-readiness-check.sh", stubs, ("CHRONYC", Path.Combine(stubs, "no-such-chronyc")));

        Assert.True(result.ExitCode != 0, result.Describe());
        Assert.Contains(result.Lines, line => line.StartsWith("FAIL time: ", StringComparison.Ordinal) && line.Contains("not found", StringComparison.Ordinal));
        Assert.Contains(result.Lines, line => line.StartsWith("PASS images: ", StringComparison.Ordinal));
    }

    [Fact]
    public void ReadinessCheck_ClockNotSynchronised_FailsTheTimeStep()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 0, leapStatus: "Not synchronised");

        var result = RunScript("offline-readiness-check.sh", stubs);

        Assert.True(result.ExitCode != 0, result.Describe());
        Assert.Contains("FAIL time: clock not synchronised (Leap status: Not synchronised)", result.Lines);
    }

    [Fact]
    public void BuildImageList_Print_DedupesAndDropsBareImageIds()
    {
        var stubs = WriteStubs(mirrorproxyExitCode: 0);

        var result = RunScript("build-image-list.sh", stubs, arguments: ["--print"]);

        Assert.True(result.ExitCode == 0, result.Describe());
        // The mirror's own image is left out: it cannot come through the mirror, every node side-loads it.
        Assert.Equal(["docker.io/library/nginx:1.27", "ghcr.io/org/app:1.0", "quay.io/org/backup:2.1"], result.Lines);
        Assert.Contains("left out the mirror's own images (side-loaded on every node): localhost/mirrorproxy:0.1.0", result.Stderr, StringComparison.Ordinal);
    }

    private string WriteStubs(int mirrorproxyExitCode, string leapStatus = "Normal")
    {
        var dir = Path.Combine(_temp, "stubs");
        Directory.CreateDirectory(dir);
        var imageId = "sha256:" + new string('a', 64);

        WriteExecutable(dir, "kubectl", $$"""
            #!/bin/sh
            case "$1 $2 $3" in
              "get pods -A") printf '%s' 'docker.io/library/nginx:1.27 {{imageId}} ghcr.io/org/app:1.0 docker.io/library/nginx:1.27 localhost/mirrorproxy:0.1.0' ;;
              "get cronjobs -A") printf '%s' 'quay.io/org/backup:2.1 localhost/mirrorproxy:0.1.0' ;;
              "-n mirrorproxy get") printf '%s' 'localhost/mirrorproxy:0.1.0 localhost/mirrorproxy:0.1.0' ;;
              "get certificates.cert-manager.io -A") printf 'mirrorproxy/mirrorproxy\tTrue\t2030-01-01T00:00:00Z\n' ;;
              *) echo "kubectl stub: unexpected arguments: $*" >&2; exit 3 ;;
            esac
            """);
        WriteExecutable(dir, "mirrorproxy", $$"""
            #!/bin/sh
            echo "$*" > '{{dir}}/mirrorproxy.args'
            cat > '{{dir}}/mirrorproxy.stdin'
            if [ {{mirrorproxyExitCode}} -eq 0 ]; then
              echo "OK docker.io/library/nginx:1.27"
              echo "OK ghcr.io/org/app:1.0"
              echo "2 images: 2 complete, 0 missing, 0 invalid"
            else
              echo "OK docker.io/library/nginx:1.27"
              echo "MISSING: ghcr.io/org/app:1.0: linux/arm64 layer sha256:{{new string('b', 64)}}"
              echo "2 images: 1 complete, 1 missing, 0 invalid"
            fi
            exit {{mirrorproxyExitCode}}
            """);
        WriteExecutable(dir, "chronyc", $$"""
            #!/bin/sh
            echo "Reference ID    : C0A80001 (ntp.internal)"
            echo "Stratum         : 3"
            echo "Leap status     : {{leapStatus}}"
            """);
        WriteExecutable(dir, "getent", """
            #!/bin/sh
            [ "$1" = hosts ] && [ "$2" = mirror.internal ] && echo "10.43.0.50      mirror.internal" && exit 0
            exit 2
            """);
        return dir;
    }

    private static void WriteExecutable(string dir, string name, string script)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, script.ReplaceLineEndings("\n") + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static ScriptResult RunScript(string script, string stubs, params (string Name, string Value)[] environment) =>
        RunScript(script, stubs, [], environment);

    private static ScriptResult RunScript(string script, string stubs, string[] arguments, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = stubs,
        };
        start.ArgumentList.Add(Path.Combine(DeployDir, script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["KUBECTL"] = Path.Combine(stubs, "kubectl");
        start.Environment["MIRRORPROXY"] = Path.Combine(stubs, "mirrorproxy");
        start.Environment["CHRONYC"] = Path.Combine(stubs, "chronyc");
        start.Environment["GETENT"] = Path.Combine(stubs, "getent");
        foreach (var name in new[] { "MIRROR_URL", "MIRROR_CA", "PLATFORMS", "DNS_NAMES", "NAMESPACE" })
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{script} did not finish within 60 s");
        }

        return new ScriptResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }

    private sealed record ScriptResult(int ExitCode, string Stdout, string Stderr)
    {
        public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        public string Describe() => $"exit code {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    private static List<YamlDocument> LoadYaml(string relativePath)
    {
        using var reader = new StreamReader(Path.Combine(DeployDir, relativePath));
        var stream = new YamlStream();
        stream.Load(reader);
        return stream.Documents.ToList();
    }

    private static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlScalarNode scalar ? scalar.Value : null;

    private static IEnumerable<YamlNode> Sequence(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlSequenceNode sequence ? sequence.Children : [];

    private static TheoryData<string> RelativePaths(params string[] patterns)
    {
        var data = new TheoryData<string>();
        foreach (var path in patterns
                     .SelectMany(pattern => Directory.EnumerateFiles(DeployDir, pattern, SearchOption.AllDirectories))
                     .Select(path => Path.GetRelativePath(DeployDir, path))
                     .Order(StringComparer.Ordinal))
        {
            data.Add(path);
        }

        return data;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MirrorProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no MirrorProxy.sln above {AppContext.BaseDirectory}");
    }
}
