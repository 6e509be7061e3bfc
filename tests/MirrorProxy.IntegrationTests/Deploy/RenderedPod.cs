using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>A file as a container sees it: where the test wrote it, and the Secret or ConfigMap key it came from.</summary>
internal sealed record MountedFile(string LocalPath, string Kind, string ObjectName, string Key, string Content);

/// <summary>
/// The mirror's pod from a rendered kustomization, for running its configuration with the real program as a local
/// process (<see cref="Support.MirrorProcess"/>): the ConfigMap's <c>mirrorproxy.json</c>, the files it names on the
/// container's volumes (written from the rendered Secrets and ConfigMaps), and the container's environment from its
/// Secret references. Files the pod would get from outside the kustomization (cert-manager's certificate) are not
/// there; <see cref="KubeletRunTests"/> runs whole pods.
/// </summary>
internal sealed class RenderedPod
{
    private readonly RenderedManifests _rendered;
    private readonly string _root;

    private RenderedPod(RenderedManifests rendered, JsonObject podSpec, JsonObject container, JsonObject config, string root)
    {
        _rendered = rendered;
        PodSpec = podSpec;
        Container = container;
        Config = config;
        _root = root;
    }

    public JsonObject PodSpec { get; }

    public JsonObject Container { get; }

    /// <summary>The <c>MirrorProxy</c> section of the mounted configuration, to be adjusted before <see cref="WriteConfigAsync"/>.</summary>
    public JsonObject Config { get; }

    /// <summary>The single Deployment's pod; its files go under <paramref name="root"/>.</summary>
    public static RenderedPod FromDeployment(RenderedManifests rendered, string root)
    {
        var deployment = Assert.Single(rendered.OfKind("Deployment"));
        var podSpec = (JsonObject)deployment["spec"]!["template"]!["spec"]!;
        var container = (JsonObject)Assert.Single((JsonArray)podSpec["containers"]!)!;
        var configMap = rendered.Find("ConfigMap", "mirrorproxy-config") ?? throw new Xunit.Sdk.XunitException("no ConfigMap mirrorproxy-config");
        var config = (JsonObject)JsonNode.Parse((string)configMap["data"]!["mirrorproxy.json"]!)!["MirrorProxy"]!;
        return new RenderedPod(rendered, podSpec, container, config, root);
    }

    /// <summary>
    /// Writes the file the container sees at <paramref name="containerPath"/> from the volume mounted there, as the
    /// kubelet would; fails when no volume of the container holds that path.
    /// </summary>
    public MountedFile Materialize(string containerPath)
    {
        foreach (var mount in ((JsonArray)Container["volumeMounts"]!).OfType<JsonObject>().OrderByDescending(m => ((string)m["mountPath"]!).Length))
        {
            var mountPath = ((string)mount["mountPath"]!).TrimEnd('/');
            if (!containerPath.StartsWith(mountPath + "/", StringComparison.Ordinal))
            {
                continue;
            }

            var relative = containerPath[(mountPath.Length + 1)..];
            var volume = ((JsonArray)PodSpec["volumes"]!).OfType<JsonObject>().Single(v => (string?)v["name"] == (string?)mount["name"]);
            var sources = volume["projected"]?["sources"] is JsonArray projected ? projected.OfType<JsonObject>().ToList() : [volume];
            foreach (var source in sources)
            {
                var (kind, reference) = source["secret"] is JsonObject secret ? ("Secret", secret) : source["configMap"] is JsonObject map ? ("ConfigMap", map) : (null, null);
                if (reference is null)
                {
                    continue;
                }

                var objectName = (string)(reference["secretName"] ?? reference["name"])!;
                var items = (reference["items"] as JsonArray)?.OfType<JsonObject>().Select(i => ((string)i["key"]!, (string)i["path"]!)).ToList();
                var key = items is null ? relative : items.Where(i => i.Item2 == relative).Select(i => i.Item1).FirstOrDefault();
                if (key is null)
                {
                    continue;
                }

                var content = Data(kind!, objectName, key)
                    ?? throw new Xunit.Sdk.XunitException($"{containerPath}: {kind} {objectName} (volume {volume["name"]}) has no key {key}");
                var local = Path.Combine(_root, "mounts", (string)mount["name"]!, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(local)!);
                File.WriteAllText(local, content);
                return new MountedFile(local, kind!, objectName, key, content);
            }

            throw new Xunit.Sdk.XunitException($"{containerPath}: volume {volume["name"]} mounted at {mountPath} holds no {relative}");
        }

        throw new Xunit.Sdk.XunitException($"{containerPath} is on no volume the container mounts");
    }

    /// <summary>The container's environment: plain values, and Secret or ConfigMap keys (an optional one that is absent is left out).</summary>
    public Dictionary<string, string?> Environment()
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var variable in (Container["env"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var name = (string)variable["name"]!;
            if (variable["value"] is { } value)
            {
                environment[name] = (string?)value;
                continue;
            }

            var (kind, reference) = variable["valueFrom"]?["secretKeyRef"] is JsonObject secret ? ("Secret", secret)
                : variable["valueFrom"]?["configMapKeyRef"] is JsonObject map ? ("ConfigMap", map)
                : throw new Xunit.Sdk.XunitException($"env {name}: only value, secretKeyRef and configMapKeyRef are read");
            if (Data(kind, (string)reference["name"]!, (string)reference["key"]!) is { } data)
            {
                environment[name] = data;
            }
            else if ((string?)reference["optional"] != "true")
            {
                throw new Xunit.Sdk.XunitException($"env {name}: {kind} {reference["name"]} key {reference["key"]} is not in the kustomization");
            }
        }

        return environment;
    }

    /// <summary>Writes <c>{"MirrorProxy": Config}</c> to <paramref name="path"/>.</summary>
    public async Task<string> WriteConfigAsync(string path)
    {
        var document = new JsonObject { ["MirrorProxy"] = Config.DeepClone() };
        await File.WriteAllTextAsync(path, document.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>A key of a rendered Secret (decoded) or ConfigMap; null when the object or the key is not rendered.</summary>
    private string? Data(string kind, string objectName, string key) =>
        _rendered.Find(kind, objectName)?["data"]?[key] is { } value
            ? kind == "Secret" ? Encoding.UTF8.GetString(Convert.FromBase64String((string)value!)) : (string?)value
            : null;
}
