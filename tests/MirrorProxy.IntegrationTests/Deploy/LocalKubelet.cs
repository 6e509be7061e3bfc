using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>A pod that a kubelet would refuse or could not start, with the reason it would give.</summary>
internal sealed class PodStartException(string message) : Exception(message);

/// <summary>ConfigMaps and Secrets of the namespace, as key → text.</summary>
internal sealed class NamespaceObjects
{
    public Dictionary<string, Dictionary<string, string>> ConfigMaps { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, Dictionary<string, string>> Secrets { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Runs a pod spec as a kubelet would, without a cluster: each container is a local process started from the
/// image's files only (a command the image does not hold, such as a shell, fails the pod), init containers first
/// and to completion, then the main container. Volumes are directories: ConfigMap, Secret and projected volumes
/// are written out from <see cref="NamespaceObjects"/>, emptyDir and persistentVolumeClaim are empty directories
/// given to <c>fsGroup</c>, hostPath is a directory created root-owned as <c>DirectoryOrCreate</c> does.
/// Without mount namespaces a mount path cannot be the real path, so every path under a mount point is
/// translated to its directory wherever the container can name it: command, arguments, environment and the text
/// of mounted ConfigMaps. Container ports are remapped to free loopback ports, which the program learns through
/// <c>MIRRORPROXY__LISTEN</c> (a network namespace's job); Service addresses given by the caller are rewritten
/// the same way. Run as root, each container runs as its <c>runAsUser</c>/<c>runAsGroup</c> with <c>fsGroup</c>
/// as a supplementary group, only the capabilities it adds, and no-new-privs (util-linux <c>setpriv</c>).
/// </summary>
internal sealed partial class LocalKubelet
{
    private readonly ContainerImage _image;
    private readonly string _imageName;
    private readonly NamespaceObjects _objects;
    private readonly string _root;

    /// <param name="image">The one image on the node.</param>
    /// <param name="imageName">Its name as manifests use it, e.g. <c>localhost/mirrorproxy:0.1.0</c>.</param>
    public LocalKubelet(ContainerImage image, string imageName, NamespaceObjects objects, string root)
    {
        _image = image;
        _imageName = imageName;
        _objects = objects;
        _root = root;
    }

    public static bool CanSwitchUsers => Environment.IsPrivilegedProcess;

    /// <summary>Runs the init containers to completion, then starts the first container; throws when a kubelet could not.</summary>
    public async Task<RunningPod> StartPodAsync(string name, JsonObject podSpec, IReadOnlyDictionary<string, string>? services = null)
    {
        var pod = Prepare(name, podSpec, services);
        foreach (var init in (podSpec["initContainers"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var launch = pod.Launch(init);
            var result = await launch.RunToCompletionAsync(TimeSpan.FromMinutes(1));
            pod.Log.AppendLine($"init container {launch.Name}: exit {result.ExitCode}\n{result.StandardOutput}{result.StandardError}");
            if (!result.Succeeded)
            {
                throw new PodStartException($"init container {launch.Name} failed (Init:Error): {result.Describe()}");
            }
        }

        var containers = (podSpec["containers"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        if (containers.Count != 1)
        {
            throw new InvalidOperationException($"pod {name}: expected one container, found {containers.Count}");
        }

        var main = pod.Launch(containers[0]);
        return new RunningPod(pod, containers[0], main.Start(), main.Ports);
    }

    /// <summary>Runs every container of a pod (a Job's) to completion, in order.</summary>
    public async Task<IReadOnlyList<ProcessResult>> RunPodAsync(string name, JsonObject podSpec, IReadOnlyDictionary<string, string>? services, TimeSpan timeout)
    {
        var pod = Prepare(name, podSpec, services);
        var results = new List<ProcessResult>();
        foreach (var container in ((podSpec["initContainers"] as JsonArray ?? []).Concat(podSpec["containers"] as JsonArray ?? [])).OfType<JsonObject>())
        {
            results.Add(await pod.Launch(container).RunToCompletionAsync(timeout));
        }

        return results;
    }

    private PodSandbox Prepare(string name, JsonObject podSpec, IReadOnlyDictionary<string, string>? services)
    {
        var directory = Path.Combine(_root, name);
        CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var security = podSpec["securityContext"] as JsonObject;
        var fsGroup = Int(security?["fsGroup"]);

        // Where each volume lives, then every mount of every container, so that file contents can be translated.
        var volumes = new Dictionary<string, (JsonObject Spec, string Directory)>(StringComparer.Ordinal);
        foreach (var volume in (podSpec["volumes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var volumeName = (string)volume["name"]!;
            volumes[volumeName] = (volume, Path.Combine(directory, "volumes", volumeName));
        }

        var mounts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var container in ((podSpec["initContainers"] as JsonArray ?? []).Concat(podSpec["containers"] as JsonArray ?? [])).OfType<JsonObject>())
        {
            foreach (var mount in (container["volumeMounts"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var volumeName = (string)mount["name"]!;
                if (!volumes.TryGetValue(volumeName, out var volume))
                {
                    throw new PodStartException($"container {container["name"]} mounts volume {volumeName}, which the pod does not define");
                }

                var target = mount["subPath"] is { } subPath ? Path.Combine(volume.Directory, (string)subPath!) : volume.Directory;
                var mountPath = (string)mount["mountPath"]!;
                if (mounts.TryGetValue(mountPath, out var existing) && existing != target)
                {
                    throw new InvalidOperationException($"{mountPath} is mounted from two volumes in one pod; the path translation cannot tell them apart");
                }

                mounts[mountPath] = target;
            }
        }

        var rootfs = Path.Combine(directory, "rootfs");
        CreateDirectory(rootfs, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var translator = new PathTranslator(mounts, rootfs, services ?? new Dictionary<string, string>());
        foreach (var (_, (spec, volumeDirectory)) in volumes)
        {
            Materialize(spec, volumeDirectory, fsGroup, translator);
        }

        return new PodSandbox(this, name, podSpec, translator, rootfs);
    }

    private void Materialize(JsonObject volume, string directory, int? fsGroup, PathTranslator translator)
    {
        var name = (string)volume["name"]!;
        const UnixFileMode Open = (UnixFileMode)0b111_101_101;
        if (volume["hostPath"] is JsonObject hostPath)
        {
            // DirectoryOrCreate: 0755, owned by the kubelet (root). fsGroup does not apply to hostPath.
            if ((string?)hostPath["type"] is not ("DirectoryOrCreate" or "Directory"))
            {
                throw new PodStartException($"volume {name}: hostPath type {hostPath["type"]} is not emulated");
            }

            CreateDirectory(directory, Open);
            return;
        }

        if (volume["emptyDir"] is not null || volume["persistentVolumeClaim"] is not null)
        {
            // A fresh directory; with fsGroup the kubelet gives its group ownership and group write (setgid).
            CreateDirectory(directory, (UnixFileMode)0b111_111_111);
            GiveToGroup(directory, fsGroup, setGid: true);
            return;
        }

        CreateDirectory(directory, Open);
        var sources = volume["projected"] is JsonObject projected ? (projected["sources"] as JsonArray ?? []).OfType<JsonObject>().ToList() : [volume];
        foreach (var source in sources)
        {
            if (source["configMap"] is JsonObject configMap)
            {
                WriteItems(name, directory, configMap, (string)configMap["name"]!, _objects.ConfigMaps, "configmap", fsGroup, translator, translate: true);
            }
            else if (source["secret"] is JsonObject secret)
            {
                WriteItems(name, directory, secret, (string)(secret["secretName"] ?? secret["name"])!, _objects.Secrets, "secret", fsGroup, translator, translate: false);
            }
            else
            {
                throw new PodStartException($"volume {name}: {string.Join(", ", source.Select(p => p.Key))} is not emulated");
            }
        }
    }

    private static void WriteItems(
        string volume, string directory, JsonObject source, string objectName, Dictionary<string, Dictionary<string, string>> store, string kind,
        int? fsGroup, PathTranslator translator, bool translate)
    {
        if (!store.TryGetValue(objectName, out var data))
        {
            if ((string?)source["optional"] == "true")
            {
                return;
            }

            throw new PodStartException($"volume {volume}: {kind} \"{objectName}\" not found (the pod stays in ContainerCreating)");
        }

        var mode = (UnixFileMode)(Int(source["defaultMode"]) ?? 0b110_100_100);
        var items = (source["items"] as JsonArray)?.OfType<JsonObject>().Select(i => ((string)i["key"]!, (string)i["path"]!)).ToList()
            ?? data.Keys.Select(k => (k, k)).ToList();
        foreach (var (key, path) in items)
        {
            if (!data.TryGetValue(key, out var text))
            {
                throw new PodStartException($"volume {volume}: {kind} \"{objectName}\" has no key {key}");
            }

            var file = Path.Combine(directory, path);
            CreateDirectory(Path.GetDirectoryName(file)!, (UnixFileMode)0b111_101_101);
            File.WriteAllText(file, translate ? translator.Translate(text) : text);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(file, mode);
            }

            GiveToGroup(file, fsGroup, setGid: false);
        }
    }

    private static void GiveToGroup(string path, int? fsGroup, bool setGid)
    {
        if (fsGroup is not { } group || !CanSwitchUsers)
        {
            return;
        }

        Run("/bin/chown", $"0:{group.ToString(CultureInfo.InvariantCulture)}", path);
        Run("/bin/chmod", setGid ? "g+rwxs" : "g+r", path);
    }

    private static void Run(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { UseShellExecute = false })!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {process.ExitCode}");
        }
    }

    private static void CreateDirectory(string path, UnixFileMode mode)
    {
        Directory.CreateDirectory(path);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    internal static int? Int(JsonNode? node) => (string?)node is not { Length: > 0 } text ? null
        : text.Length > 1 && text[0] == '0' ? Convert.ToInt32(text, 8) // YAML 1.1 octal, as kubectl reads 0440
        : int.Parse(text, CultureInfo.InvariantCulture);

    /// <summary>Translates container paths (longest mount point first, in one pass) and Service addresses.</summary>
    internal sealed class PathTranslator
    {
        private readonly Regex? _pattern;
        private readonly Dictionary<string, string> _map;

        public PathTranslator(IReadOnlyDictionary<string, string> mounts, string rootfs, IReadOnlyDictionary<string, string> services)
        {
            Mounts = mounts;
            Rootfs = rootfs;
            _map = new Dictionary<string, string>(StringComparer.Ordinal);
            var alternatives = new List<string>();
            foreach (var (mountPath, directory) in mounts.OrderByDescending(m => m.Key.Length))
            {
                _map[mountPath] = directory;
                alternatives.Add(@"(?<![\w./-])" + Regex.Escape(mountPath) + @"(?=$|[/""'\s,;\]}])");
            }

            foreach (var (address, local) in services)
            {
                _map[address] = local;
                alternatives.Add(@"(?<=//)" + Regex.Escape(address) + @"(?=$|[/""'\s])");
            }

            _pattern = alternatives.Count == 0 ? null : new Regex(string.Join('|', alternatives), RegexOptions.CultureInvariant);
        }

        public IReadOnlyDictionary<string, string> Mounts { get; }

        public string Rootfs { get; }

        public string Translate(string text) => _pattern?.Replace(text, m => _map[m.Value]) ?? text;
    }

    /// <summary>One pod's volumes and translation, from which its containers are launched.</summary>
    internal sealed class PodSandbox(LocalKubelet kubelet, string name, JsonObject podSpec, PathTranslator translator, string rootfs)
    {
        public string Name => name;

        public StringBuilder Log { get; } = new();

        public ContainerLaunch Launch(JsonObject container)
        {
            var image = (string)container["image"]!;
            if (image != kubelet._imageName)
            {
                throw new PodStartException($"container {container["name"]}: image {image} is not on the node (ErrImagePull: nodes pull through the mirror itself)");
            }

            var command = (container["command"] as JsonArray)?.Select(n => (string)n!).ToList();
            var args = (container["args"] as JsonArray)?.Select(n => (string)n!).ToList() ?? [];
            var argv = command is not null ? [.. command, .. args] : kubelet._image.Entrypoint.Concat(args).ToList();
            if (argv.Count == 0 || !kubelet._image.Files.TryGetValue(argv[0], out var program))
            {
                throw new PodStartException(
                    $"container {container["name"]}: exec {(argv.Count == 0 ? "(nothing)" : argv[0])}: no such file or directory in image {image} (it holds {string.Join(", ", kubelet._image.Files.Keys)})");
            }

            var environment = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ["HOSTNAME"] = name,
                ["HOME"] = rootfs,
            };
            foreach (var (key, value) in kubelet._image.Environment)
            {
                environment[key] = translator.Translate(value);
            }

            foreach (var variable in (container["env"] as JsonArray ?? []).OfType<JsonObject>())
            {
                if (Resolve(variable) is { } value)
                {
                    environment[(string)variable["name"]!] = translator.Translate(value);
                }
            }

            if (translator.Mounts.TryGetValue("/tmp", out var tmp))
            {
                environment["TMPDIR"] = tmp;
            }

            var ports = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var port in (container["ports"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var local = LoopbackPorts.GetFreePort();
                ports[(string?)port["name"] ?? (string)port["containerPort"]!] = local;
                ports[(string)port["containerPort"]!] = local;
                environment["MIRRORPROXY__LISTEN"] = $"127.0.0.1:{local}";
            }

            var podSecurity = podSpec["securityContext"] as JsonObject;
            var security = container["securityContext"] as JsonObject;
            var user = Int(security?["runAsUser"]) ?? Int(podSecurity?["runAsUser"]) ?? (int.TryParse(kubelet._image.User, out var imageUser) ? imageUser : 0);
            var group = Int(security?["runAsGroup"]) ?? Int(podSecurity?["runAsGroup"]) ?? user;
            var nonRoot = (string?)(security?["runAsNonRoot"] ?? podSecurity?["runAsNonRoot"]) == "true";
            if (nonRoot && user == 0)
            {
                throw new PodStartException($"container {container["name"]}: runAsNonRoot and the user is root (CreateContainerConfigError)");
            }

            var capabilities = (security?["capabilities"]?["add"] as JsonArray)?.Select(c => ((string)c!).ToLowerInvariant()).ToList() ?? [];
            var launcher = new List<string>();
            if (CanSwitchUsers)
            {
                var fsGroup = Int(podSecurity?["fsGroup"]);
                launcher.AddRange(["/usr/bin/setpriv", $"--reuid={user}", $"--regid={group}", fsGroup is { } g ? $"--groups={g}" : "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=" + string.Join(',', ["-all", .. capabilities.Select(c => "+" + c)])]);
                if ((string?)security?["allowPrivilegeEscalation"] == "false")
                {
                    launcher.Add("--no-new-privs");
                }

                launcher.Add("--");
            }

            var workingDirectory = kubelet._image.WorkingDirectory == "/" ? rootfs : translator.Translate(kubelet._image.WorkingDirectory);
            return new ContainerLaunch((string)container["name"]!, [.. launcher, program, .. argv.Skip(1).Select(translator.Translate)], environment, workingDirectory, ports);
        }

        private string? Resolve(JsonObject variable)
        {
            if (variable["value"] is { } value)
            {
                return (string?)value;
            }

            var from = variable["valueFrom"];
            var (reference, store, kind) = from?["secretKeyRef"] is JsonObject secret ? (secret, kubelet._objects.Secrets, "secret")
                : from?["configMapKeyRef"] is JsonObject configMap ? (configMap, kubelet._objects.ConfigMaps, "configmap")
                : throw new PodStartException($"env {variable["name"]}: only value, secretKeyRef and configMapKeyRef are emulated");
            var objectName = (string)reference["name"]!;
            var key = (string)reference["key"]!;
            if (store.TryGetValue(objectName, out var data) && data.TryGetValue(key, out var text))
            {
                return text;
            }

            return (string?)reference["optional"] == "true" ? null
                : throw new PodStartException($"env {variable["name"]}: {kind} \"{objectName}\" key {key} not found (CreateContainerConfigError)");
        }
    }

    /// <summary>A container ready to start: the command line (with setpriv in front when run as root) and a clean environment.</summary>
    internal sealed class ContainerLaunch(string name, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment, string workingDirectory, IReadOnlyDictionary<string, int> ports)
    {
        public string Name => name;

        public IReadOnlyDictionary<string, int> Ports => ports;

        public RunningProcess Start()
        {
            var start = StartInfo();
            return RunningProcess.Start(start, ProcessRunner.FormatCommandLine(argv[0], argv.Skip(1)), new OutputBuffer());
        }

        public async Task<ProcessResult> RunToCompletionAsync(TimeSpan timeout)
        {
            await using var process = Start();
            var exited = await process.WaitForExitAsync(timeout);
            var exitCode = exited ? await process.Exited : -1;
            if (exited)
            {
                await process.WaitForOutputAsync(TimeSpan.FromSeconds(10));
            }

            var stdout = string.Join('\n', process.Output.Snapshot().Where(l => l.Source == OutputSource.StandardOutput).Select(l => l.Text));
            var stderr = string.Join('\n', process.Output.Snapshot().Where(l => l.Source == OutputSource.StandardError).Select(l => l.Text));
            return new ProcessResult(argv[0], argv.Skip(1).ToList(), exitCode, Encoding.UTF8.GetBytes(stdout + "\n"), stderr, TimeSpan.Zero, timedOut: !exited);
        }

        private ProcessStartInfo StartInfo()
        {
            var start = ProcessRunner.CreateStartInfo(argv[0], argv.Skip(1).ToList(), new ProcessRunOptions { WorkingDirectory = workingDirectory });
            start.RedirectStandardInput = false;
            start.Environment.Clear();
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }

            return start;
        }
    }
}

/// <summary>A started pod: its main container's process, its ports on loopback, and its probes.</summary>
internal sealed class RunningPod(LocalKubelet.PodSandbox sandbox, JsonObject container, RunningProcess process, IReadOnlyDictionary<string, int> ports) : IAsyncDisposable
{
    private readonly HttpClient _probeClient = new(new SocketsHttpHandler
    {
        UseProxy = false,
        // The kubelet does not verify certificates of HTTPS probes.
        SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
    })
    { Timeout = TimeSpan.FromSeconds(3) };

    public RunningProcess Process => process;

    public IReadOnlyDictionary<string, int> Ports => ports;

    public string Describe() => $"{sandbox.Log}\n--- {process.CommandLine} ---\n{process.Output.Tail(60)}";

    /// <summary>Polls the startup probe (every 200 ms, within its periodSeconds × failureThreshold, at most 60 s) until it passes.</summary>
    public async Task WaitUntilStartedAsync()
    {
        var probe = container["startupProbe"] as JsonObject ?? container["readinessProbe"] as JsonObject
            ?? throw new InvalidOperationException("the container has neither a startup nor a readiness probe");
        var period = LocalKubelet.Int(probe["periodSeconds"]) ?? 10;
        var failures = LocalKubelet.Int(probe["failureThreshold"]) ?? 3;
        var deadline = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(Math.Min(60, period * failures));
        while (true)
        {
            if (process.HasExited)
            {
                throw new PodStartException($"container exited with {await process.Exited} before its startup probe passed (CrashLoopBackOff):\n{Describe()}");
            }

            if (await ProbeAsync(probe) is >= 200 and < 400)
            {
                return;
            }

            if (deadline.Elapsed > limit)
            {
                throw new PodStartException($"startup probe failed for {limit.TotalSeconds} s:\n{Describe()}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Sends the probe's HTTP GET; returns the status code, or 0 when nothing answered.</summary>
    public async Task<int> ProbeAsync(JsonObject probe)
    {
        var get = probe["httpGet"] as JsonObject ?? throw new InvalidOperationException("only httpGet probes are emulated");
        var port = (string)get["port"]!;
        if (!ports.TryGetValue(port, out var local))
        {
            throw new PodStartException($"probe port {port} is not a port of the container");
        }

        var scheme = ((string?)get["scheme"] ?? "HTTP").ToLowerInvariant();
        try
        {
            using var response = await _probeClient.GetAsync($"{scheme}://127.0.0.1:{local}{(string?)get["path"] ?? "/"}");
            return (int)response.StatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return 0;
        }
    }

    public JsonObject Probe(string name) => container[name] as JsonObject ?? throw new InvalidOperationException($"the container has no {name}");

    public async ValueTask DisposeAsync()
    {
        _probeClient.Dispose();
        await process.StopAsync(TimeSpan.FromSeconds(10));
        await process.DisposeAsync();
    }
}
