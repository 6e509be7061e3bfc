using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// Every kustomization under deploy/, rendered by <c>kubectl kustomize</c> and run as a kubelet would run it
/// (<see cref="LocalKubelet"/>): the mirror's Deployment or DaemonSet with its init containers, probed at its
/// startup, liveness and readiness probes, then the warm-up CronJob's container against it, pulling from a real
/// registry. The test plays the parts a cluster would: cert-manager (the Secret mirrorproxy-tls), the operator
/// (the admin token, the image list, the Harbor robot secret, the replicas' S3 key files, upstream URLs pointing at
/// the test registries, the replicas' shared engines at closed ports) and the Service (mirror.internal:5000 is the
/// mirror's loopback port).
/// </summary>
/// <remarks>
/// In the pull-through collection, so that its Native AOT build does not run at the same time as the arm64 one
/// (two AOT compilations at once on two cores take more than twice as long).
/// </remarks>
[Collection(PullThroughCollection.Name)]
public sealed class KubeletRunTests(DeployFixture fixture, ITestOutputHelper log) : IDisposable, IClassFixture<DeployFixture>
{
    private const string ImageName = "localhost/mirrorproxy:0.1.0";
    private readonly TempDirectory _work = new("kubelet");

    public void Dispose() => _work.Dispose();

    public static TheoryData<string> Kustomizations()
    {
        var deploy = Path.Combine(RepositoryRoot.Path, "deploy");
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(deploy, "kustomization.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(deploy, Path.GetDirectoryName(file)!));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public async Task Kustomization_RunsAsAKubeletWouldRunIt(string kustomization)
    {
        var watch = Stopwatch.StartNew();
        // The files the operator writes before applying (the replicas' S3 keys) get values of the test's own.
        var directory = Path.Combine(RepositoryRoot.Path, "deploy", kustomization);
        var operatorFiles = RenderedManifests.OperatorFiles(directory).ToDictionary(f => f, f => $"{f}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
        var rendered = operatorFiles.Count == 0 ? await RenderedManifests.RenderAsync(directory) : await RenderedManifests.RenderAsync(directory, operatorFiles);
        Assert.NotEmpty(rendered.Objects);
        var mirrors = rendered.OfKind("Deployment").Concat(rendered.OfKind("DaemonSet")).ToList();
        var jobs = rendered.OfKind("CronJob").ToList();
        var workloads = rendered.Objects.Count(o => (string?)o["kind"] is "Deployment" or "DaemonSet" or "StatefulSet" or "Job" or "CronJob" or "Pod" or "ReplicaSet");
        Assert.Equal(mirrors.Count + jobs.Count, workloads);

        if (mirrors.Count == 0)
        {
            // Monitoring only: the alerts, the scrape and the dashboard, nothing to run.
            Assert.Empty(jobs);
            Assert.NotNull(rendered.Find("PrometheusRule", "mirrorproxy"));
            Assert.NotNull(rendered.Find("ServiceMonitor", "mirrorproxy"));
            var dashboard = rendered.Find("ConfigMap", "mirrorproxy-dashboard");
            Assert.Equal("1", (string?)dashboard?["metadata"]?["labels"]?["grafana_dashboard"]);
            using var json = JsonDocument.Parse((string)dashboard!["data"]!["mirrorproxy-dashboard.json"]!);
            Assert.NotEmpty(json.RootElement.GetProperty("panels").EnumerateArray());
            return;
        }

        var mirror = Assert.Single(mirrors);
        var objects = ClusterFor(rendered);
        var kubelet = new LocalKubelet(fixture.Image, ImageName, objects, _work.Path);
        var podSpec = (JsonObject)mirror["spec"]!["template"]!["spec"]!;

        await using (var pod = await kubelet.StartPodAsync("mirror", podSpec))
        {
            await pod.WaitUntilStartedAsync();
            Assert.Equal(200, await pod.ProbeAsync(pod.Probe("livenessProbe")));
            Assert.True(await pod.ProbeAsync(pod.Probe("readinessProbe")) == 200, pod.Describe());
            var started = watch.Elapsed;

            // The Service: mirror.internal:5000 (CoreDNS / /etc/hosts) and the Service's own names reach the pod's port.
            var service = Assert.Single(rendered.OfKind("Service"));
            var servicePort = (string)service["spec"]!["ports"]![0]!["port"]!;
            var local = $"127.0.0.1:{pod.Ports[(string)service["spec"]!["ports"]![0]!["targetPort"]!]}";
            var services = new[] { "mirror.internal", "mirrorproxy", "mirrorproxy.mirrorproxy", "mirrorproxy.mirrorproxy.svc" }
                .ToDictionary(host => $"{host}:{servicePort}", _ => local);

            // Replicas: the S3 and coordination stores are not there (ClusterFor), and the mirror says so without
            // leaving service; warm-up below still fills its own cache.
            if (JsonNode.Parse(objects.ConfigMaps["mirrorproxy-config"]["mirrorproxy.json"])!["MirrorProxy"]!["Storage"]?["S3"] is not null)
            {
                using var readiness = new HttpClient(new SocketsHttpHandler { UseProxy = false, SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true } });
                var report = await readiness.GetFromJsonAsync<JsonObject>($"https://{local}/readyz");
                Assert.Equal("degraded", (string?)report!["status"]);
                Assert.Equal("unreachable", (string?)report["sharedStore"]);
                Assert.Equal("unreachable", (string?)report["coordination"]);
            }

            foreach (var job in jobs)
            {
                var jobSpec = (JsonObject)job["spec"]!["jobTemplate"]!["spec"]!["template"]!["spec"]!;
                var results = await kubelet.RunPodAsync($"job-{job["metadata"]!["name"]}", jobSpec, services, TimeSpan.FromMinutes(3));
                var result = Assert.Single(results);
                log.WriteLine(result.Describe());
                Assert.True(result.Succeeded, result.Describe() + "\n" + pod.Describe());
                foreach (var image in fixture.ClusterImages)
                {
                    Assert.Contains($"warmed {image}", result.StandardOutput, StringComparison.Ordinal);
                }

                Assert.Contains($"NOT MIRRORED: {ImageName}: no upstream is configured for registry localhost", result.StandardOutput, StringComparison.Ordinal);
                Assert.Contains("pinned as 'cluster'", result.StandardOutput, StringComparison.Ordinal);
            }

            // What the job pinned is complete in the mirror's cache, and the mirror is still live and ready.
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true } });
            var pins = await client.GetFromJsonAsync<JsonArray>($"https://{local}/admin/pins");
            var cluster = Assert.Single(pins!.OfType<JsonObject>());
            Assert.Equal("cluster", (string?)cluster["name"]);
            Assert.Equal(fixture.ClusterImages.Count, (int)cluster["images"]!);
            Assert.Equal(0, (int)cluster["missing"]!);
            Assert.Equal(200, await pod.ProbeAsync(pod.Probe("livenessProbe")));
            Assert.Equal(200, await pod.ProbeAsync(pod.Probe("readinessProbe")));
            log.WriteLine($"{kustomization}: rendered and started in {started.TotalSeconds:0.0} s, warm-up done at {watch.Elapsed.TotalSeconds:0.0} s " +
                $"(image built in {fixture.PublishTime.TotalSeconds:0} s, once)");
        }
    }

    [Fact]
    public async Task ContainerRunningAShell_FailsToStart_TheImageHasNone()
    {
        var podSpec = JsonNode.Parse($$"""
            {
              "initContainers": [{ "name": "cache-owner", "image": "{{ImageName}}", "command": ["/bin/sh", "-c", "chown -R 10001:10001 /var/cache/mirrorproxy"],
                                   "volumeMounts": [{ "name": "cache", "mountPath": "/var/cache/mirrorproxy" }] }],
              "containers": [{ "name": "mirrorproxy", "image": "{{ImageName}}" }],
              "volumes": [{ "name": "cache", "hostPath": { "path": "/var/cache/mirrorproxy", "type": "DirectoryOrCreate" } }]
            }
            """)!.AsObject();
        var kubelet = new LocalKubelet(fixture.Image, ImageName, new NamespaceObjects(), _work.Path);

        var failure = await Assert.ThrowsAsync<PodStartException>(() => kubelet.StartPodAsync("shell", podSpec));

        Assert.Contains("exec /bin/sh: no such file or directory in image", failure.Message, StringComparison.Ordinal);
    }

    /// <summary>The namespace as the install guide leaves it, with the site's upstreams pointing at the test registries.</summary>
    private NamespaceObjects ClusterFor(RenderedManifests rendered)
    {
        var objects = new NamespaceObjects();
        foreach (var configMap in rendered.OfKind("ConfigMap"))
        {
            objects.ConfigMaps[(string)configMap["metadata"]!["name"]!] =
                (configMap["data"] as JsonObject ?? []).ToDictionary(p => p.Key, p => (string)p.Value!);
        }

        // Secrets the kustomization generates itself (the mirror's users), decoded as the kubelet mounts them.
        foreach (var secret in rendered.OfKind("Secret"))
        {
            objects.Secrets[(string)secret["metadata"]!["name"]!] = (secret["data"] as JsonObject ?? [])
                .ToDictionary(p => p.Key, p => System.Text.Encoding.UTF8.GetString(Convert.FromBase64String((string)p.Value!)));
        }

        // The site's part: no internet here, so Docker Hub (or Harbor's Docker Hub project) is a test registry,
        // and every other upstream is a closed loopback port.
        var config = objects.ConfigMaps["mirrorproxy-config"];
        var json = JsonNode.Parse(config["mirrorproxy.json"])!;
        foreach (var upstream in json["MirrorProxy"]!["Upstreams"]!.AsArray().OfType<JsonObject>())
        {
            var url = new Uri((string)upstream["Url"]!);
            var registry = url.Host == "harbor.internal" ? fixture.Harbor : fixture.Upstream;
            upstream["Url"] = (string?)upstream["Name"] == "docker.io" ? $"http://{registry.HostPort}{url.AbsolutePath.TrimEnd('/')}" : "http://127.0.0.1:9";
        }

        // The replicas' shared engines are not run here: their addresses become closed loopback ports.
        if (json["MirrorProxy"]!["Storage"]?["S3"] is JsonObject s3)
        {
            s3["Endpoint"] = "http://127.0.0.1:9";
        }

        if (json["MirrorProxy"]!["Coordination"] is JsonObject coordination)
        {
            coordination["Redis"] = "127.0.0.1:9";
        }

        config["mirrorproxy.json"] = json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

        // cert-manager's part: the Certificate becomes the Secret mirrorproxy-tls (127.0.0.1 standing in for the ClusterIP).
        using var ca = new TestCertificateAuthority("Island CA", _work.Path);
        var (certificate, key, _) = ca.IssueServer("mirror-internal");
        objects.Secrets["mirrorproxy-tls"] = new()
        {
            ["tls.crt"] = File.ReadAllText(certificate),
            ["tls.key"] = File.ReadAllText(key),
            ["ca.crt"] = File.ReadAllText(ca.CertificateFile),
        };

        // The operator's part (deploy/README.md, steps 7 and 4): the admin token, the image list
        // (build-image-list.sh would leave the mirror's own image out; a hand-made list may not), the Harbor robot.
        objects.Secrets["mirrorproxy-admin-token"] = new() { ["token"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) };
        objects.ConfigMaps["mirrorproxy-images"] = new() { ["images.txt"] = string.Join('\n', [.. fixture.ClusterImages, ImageName]) + "\n" };
        objects.Secrets["harbor-robot"] = new() { ["password"] = DeployFixture.Robot.Password };
        return objects;
    }
}
