using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using MirrorProxy.Hosting;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// deploy/k8s/replicas rendered by <c>kubectl kustomize</c> with the S3 key files an operator writes: three replicas
/// spread over nodes behind a disruption budget, both shared engines configured, the secret key mounted where the
/// configuration looks for it; and that configuration, as the pods get it, started with the real program while
/// neither engine can be reached.
/// </summary>
public sealed class ReplicasOverlayTests(ITestOutputHelper log) : IDisposable
{
    internal static readonly string Overlay = Path.Combine(RepositoryRoot.Path, "deploy", "k8s", "replicas");

    private readonly TempDirectory _work = new("replicas-overlay");

    public void Dispose() => _work.Dispose();

    /// <summary>The two files kustomization.yaml asks the operator for, with values of this test run.</summary>
    internal static Dictionary<string, string> OperatorKeys(string accessKey, string secretKey) => new(StringComparer.Ordinal)
    {
        ["s3-access-key"] = accessKey,
        ["s3-secret-key"] = secretKey,
    };

    [Fact]
    public async Task Overlay_WithoutTheOperatorsKeyFiles_DoesNotRender()
    {
        // The keys are never in the repository: the overlay names them as files the operator provides (git-ignored).
        Assert.Equal(["s3-access-key", "s3-secret-key"], RenderedManifests.OperatorFiles(Overlay));

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => RenderedManifests.RenderAsync(Overlay, new Dictionary<string, string>()));

        Assert.Contains("s3-access-key", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overlay_RunsThreeReplicasSpreadOverNodes_WithABudgetOfTwoAndTheBaseProbes()
    {
        var rendered = await RenderedManifests.RenderAsync(Overlay, OperatorKeys("access-" + Random(), "secret-" + Random()));
        var baseline = await RenderedManifests.RenderAsync(Path.Combine(RepositoryRoot.Path, "deploy", "k8s", "base"));

        var deployment = Assert.Single(rendered.OfKind("Deployment"));
        Assert.Empty(rendered.OfKind("StatefulSet"));
        Assert.Equal("3", (string?)deployment["spec"]!["replicas"]);
        Assert.Equal("RollingUpdate", (string?)deployment["spec"]!["strategy"]!["type"]);
        Assert.Equal("0", (string?)deployment["spec"]!["strategy"]!["rollingUpdate"]!["maxUnavailable"]);
        var podLabels = (JsonObject)deployment["spec"]!["template"]!["metadata"]!["labels"]!;

        // Preferred (not required) anti-affinity per node, selecting these very pods: a cluster of fewer nodes still runs three.
        var podSpec = (JsonObject)deployment["spec"]!["template"]!["spec"]!;
        var antiAffinity = podSpec["affinity"]!["podAntiAffinity"]!;
        Assert.Null(antiAffinity["requiredDuringSchedulingIgnoredDuringExecution"]);
        var term = Assert.Single((JsonArray)antiAffinity["preferredDuringSchedulingIgnoredDuringExecution"]!)!["podAffinityTerm"]!;
        Assert.Equal("kubernetes.io/hostname", (string?)term["topologyKey"]);
        AssertSelects((JsonObject)term["labelSelector"]!["matchLabels"]!, podLabels);

        var budget = Assert.Single(rendered.OfKind("PodDisruptionBudget"));
        Assert.Equal("2", (string?)budget["spec"]!["minAvailable"]);
        AssertSelects((JsonObject)budget["spec"]!["selector"]!["matchLabels"]!, podLabels);

        // The Service in front of them, sending pulls to ready replicas only.
        var service = Assert.Single(rendered.OfKind("Service"));
        AssertSelects((JsonObject)service["spec"]!["selector"]!, podLabels);
        Assert.Equal("false", (string?)service["spec"]!["publishNotReadyAddresses"]);

        // Probes exactly as in the base.
        var container = (JsonObject)Assert.Single((JsonArray)podSpec["containers"]!)!;
        var baseContainer = Assert.Single((JsonArray)Assert.Single(baseline.OfKind("Deployment"))["spec"]!["template"]!["spec"]!["containers"]!)!;
        foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
        {
            Assert.NotNull(container[probe]);
            Assert.True(JsonNode.DeepEquals(baseContainer[probe], container[probe]), $"{probe} differs from the base's");
        }

        // Each replica's read cache: an emptyDir bounded by the kubelet, larger than Cache:MaxSize; no volume claim left.
        Assert.Empty(rendered.OfKind("PersistentVolumeClaim"));
        var cacheMount = ((JsonArray)container["volumeMounts"]!).OfType<JsonObject>().Single(m => (string?)m["mountPath"] == "/var/cache/mirrorproxy");
        var cacheVolume = ((JsonArray)podSpec["volumes"]!).OfType<JsonObject>().Single(v => (string?)v["name"] == (string?)cacheMount["name"]);
        Assert.Equal(["emptyDir", "name"], cacheVolume.Select(p => p.Key).Order(StringComparer.Ordinal));
        var config = RenderedPod.FromDeployment(rendered, _work.Path).Config;
        Assert.Equal("/var/cache/mirrorproxy", (string?)config["Cache"]!["Path"]);
        Assert.True(ByteSize.TryParse((string?)config["Cache"]!["MaxSize"], out var maxSize), $"Cache:MaxSize '{config["Cache"]!["MaxSize"]}'");
        var sizeLimit = Quantity((string)cacheVolume["emptyDir"]!["sizeLimit"]!);
        log.WriteLine($"Cache:MaxSize {maxSize.Bytes} bytes, emptyDir sizeLimit {sizeLimit} bytes");
        Assert.True(sizeLimit > maxSize.Bytes, $"sizeLimit {sizeLimit} is not above Cache:MaxSize {maxSize.Bytes}");
    }

    [Fact]
    public async Task Overlay_ConfiguresBothEngines_AndMountsTheSecretKeyWhereTheConfigurationNamesIt()
    {
        var (accessKey, secretKey) = ("access-" + Random(), "secret-" + Random());
        var rendered = await RenderedManifests.RenderAsync(Overlay, OperatorKeys(accessKey, secretKey));
        var pod = RenderedPod.FromDeployment(rendered, _work.Path);

        var s3 = (JsonObject)pod.Config["Storage"]!["S3"]!;
        Assert.True(Uri.TryCreate((string?)s3["Endpoint"], UriKind.Absolute, out var endpoint) && endpoint.Scheme is "http" or "https" && endpoint.AbsolutePath == "/",
            $"Storage:S3:Endpoint '{s3["Endpoint"]}'");
        Assert.False(string.IsNullOrEmpty((string?)s3["Bucket"]));
        Assert.Null(s3["SecretKey"]);
        Assert.Null(s3["AccessKey"]);
        Assert.NotEmpty(ConfigurationOptions.Parse((string)pod.Config["Coordination"]!["Redis"]!).EndPoints);

        // The secret key: the generated Secret's key, on the volume mounted where Storage:S3:SecretKeyFile points.
        var secretFile = pod.Materialize((string)s3["SecretKeyFile"]!);
        Assert.Equal("Secret", secretFile.Kind);
        Assert.StartsWith("mirrorproxy-s3-", secretFile.ObjectName, StringComparison.Ordinal);
        Assert.Equal(secretKey, secretFile.Content);

        // The access key: the same Secret, as the environment variable that binds Storage:S3:AccessKey.
        var variable = ((JsonArray)pod.Container["env"]!).OfType<JsonObject>().Single(v => (string?)v["name"] == "MIRRORPROXY__STORAGE__S3__ACCESSKEY");
        Assert.Equal(secretFile.ObjectName, (string?)variable["valueFrom"]!["secretKeyRef"]!["name"]);
        Assert.Equal(accessKey, pod.Environment()["MIRRORPROXY__STORAGE__S3__ACCESSKEY"]);

        var generated = Assert.Single(rendered.OfKind("Secret"), s => ((string)s["metadata"]!["name"]!).StartsWith("mirrorproxy-s3-", StringComparison.Ordinal));
        Assert.Equal("mirrorproxy", (string?)generated["metadata"]!["namespace"]);
    }

    [Fact]
    public async Task RenderedConfiguration_WithBothEnginesOutOfReach_StartsServesAndReportsThemUnreachable()
    {
        await using var registry = await TestRegistry.StartAsync();
        var image = await OciImageFactory.PushDockerImageAsync(registry, "team/app", "1.0", "replicas-overlay");
        var rendered = await RenderedManifests.RenderAsync(Overlay, OperatorKeys("access-" + Random(), "secret-" + Random()));
        var pod = RenderedPod.FromDeployment(rendered, _work.Path);

        // The site's part: Docker Hub is the test registry, every other upstream and both engines are closed loopback ports.
        PointAtLoopback(pod, registry.BaseUri, $"http://127.0.0.1:{LoopbackPorts.GetFreePort()}", $"127.0.0.1:{LoopbackPorts.GetFreePort()}");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await using var mirror = await StartAsync(pod, _work.Path);
        log.WriteLine($"started in {watch.ElapsedMilliseconds} ms");
        watch.Restart();

        using (var manifest = await mirror.Client.GetAsync("/v2/team/app/manifests/1.0"))
        {
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            Assert.Equal(image.Digest, manifest.Headers.GetValues("Docker-Content-Digest").Single());
        }

        foreach (var blob in image.Blobs)
        {
            var pull = await ScaleOut.ReplicaSet.PullBlobAsync(mirror, "team/app", blob.Digest);
            Assert.True(pull.Ok, pull.Outcome);
        }

        log.WriteLine($"manifest and {image.Blobs.Count} blobs pulled in {watch.ElapsedMilliseconds} ms");
        watch.Restart();
        using var ready = await mirror.Client.GetAsync("/readyz");
        var report = await ready.Content.ReadFromJsonAsync<JsonObject>();
        log.WriteLine($"/readyz answered in {watch.ElapsedMilliseconds} ms: {report!.ToJsonString()}");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("degraded", (string?)report["status"]);
        Assert.Equal("unreachable", (string?)report["sharedStore"]);
        Assert.Equal("unreachable", (string?)report["coordination"]);
        var warnings = ((JsonArray)report["warnings"]!).Select(w => (string)w!).ToList();
        Assert.Contains(warnings, w => w.Contains("shared store", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("coordination store", StringComparison.Ordinal));
    }

    /// <summary>Points the docker.io upstream at <paramref name="dockerHub"/>, every other upstream at a closed port, and the engines where given.</summary>
    internal static void PointAtLoopback(RenderedPod pod, Uri dockerHub, string s3Endpoint, string redis)
    {
        foreach (var upstream in ((JsonArray)pod.Config["Upstreams"]!).OfType<JsonObject>())
        {
            upstream["Url"] = (string?)upstream["Name"] == "docker.io" ? dockerHub.ToString().TrimEnd('/') : "http://127.0.0.1:9";
        }

        pod.Config["Storage"]!["S3"]!["Endpoint"] = s3Endpoint;
        pod.Config["Coordination"]!["Redis"] = redis;
    }

    /// <summary>
    /// Starts the real program with the pod's configuration: the files it names taken from the volumes that hold them,
    /// the container's environment, its own cache directory. Plain HTTP: the certificate is cert-manager's part.
    /// </summary>
    internal static async Task<MirrorProcess> StartAsync(RenderedPod pod, string directory)
    {
        foreach (var (section, key) in new[] { ("Storage:S3", "SecretKeyFile"), ("Auth", "HtpasswdFile") })
        {
            var parent = section.Split(':').Aggregate((JsonNode)pod.Config, (node, name) => node[name]!);
            parent[key] = pod.Materialize((string)parent[key]!).LocalPath;
        }

        var config = await pod.WriteConfigAsync(Path.Combine(directory, $"mirrorproxy-{Random()}.json"));
        return await MirrorProcess.StartAsync(Path.Combine(directory, "cache-" + Random()), ["--config", config], pod.Environment());
    }

    private static void AssertSelects(JsonObject selector, JsonObject labels)
    {
        Assert.NotEmpty(selector);
        foreach (var (key, value) in selector)
        {
            Assert.Equal((string?)value, (string?)labels[key]);
        }
    }

    /// <summary>A Kubernetes binary quantity (<c>12Gi</c>) in bytes.</summary>
    private static long Quantity(string quantity)
    {
        var parsed = ByteSize.TryParse(quantity + "B", out var size);
        Assert.True(parsed && quantity.EndsWith('i'), $"'{quantity}' is not a binary quantity such as 12Gi");
        return size.Bytes;
    }

    private static string Random() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
}
