using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;
using MirrorProxy.IntegrationTests.ScaleOut;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// deploy/k8s/replicas as the pods get it, against the real engines of the scale-out tests: the rendered configuration
/// (its region, path-style addressing and key handling included) with only the two addresses, the bucket and the key
/// prefix changed to the test's, and the RGW user's keys as the operator's files. As many replicas as the Deployment
/// runs, sharing what one of them fetched.
/// </summary>
[Collection(ScaleOutCollection.Name)]
public sealed class ReplicasOverlayEngineTests(ScaleOutEngines engines, ITestOutputHelper log) : IDisposable
{
    private readonly TempDirectory _work = new("replicas-overlay-engines");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task RenderedReplicas_OnRealRgwAndGarnet_ServeWhatOneFetched_WithOneUpstreamDownloadPerBlob()
    {
        log.WriteLine(engines.StartupReport);
        await using var registry = await TestRegistry.StartAsync();
        await using var upstream = await FaultProxy.StartAsync(registry.BaseUri);
        var image = await OciImageFactory.PushDockerImageAsync(registry, "team/app", "1.0", "replicas-overlay-engines");
        var rendered = await RenderedManifests.RenderAsync(ReplicasOverlayTests.Overlay, ReplicasOverlayTests.OperatorKeys(engines.Rgw.AccessKey, engines.Rgw.SecretKey));
        var replicaCount = int.Parse((string)Assert.Single(rendered.OfKind("Deployment"))["spec"]!["replicas"]!, System.Globalization.CultureInfo.InvariantCulture);

        var replicas = new List<MirrorProcess>();
        try
        {
            var bucket = engines.NewBucketName("overlay");
            var keyPrefix = engines.NewKeyPrefix("overlay");
            for (var i = 0; i < replicaCount; i++)
            {
                var pod = RenderedPod.FromDeployment(rendered, Path.Combine(_work.Path, $"pod-{i}"));
                ReplicasOverlayTests.PointAtLoopback(pod, upstream.BaseUri, engines.Rgw.Endpoint.ToString(), engines.Garnet.ConnectionString);
                pod.Config["Storage"]!["S3"]!["Bucket"] = bucket;
                pod.Config["Coordination"]!["KeyPrefix"] = keyPrefix;
                replicas.Add(await ReplicasOverlayTests.StartAsync(pod, _work.Path));
            }

            using (var manifest = await replicas[0].Client.GetAsync("/v2/team/app/manifests/1.0"))
            {
                Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            }

            foreach (var blob in image.Blobs)
            {
                var pull = await ReplicaSet.PullBlobAsync(replicas[0], "team/app", blob.Digest);
                Assert.True(pull.Ok, pull.Outcome);
            }

            var before = upstream.Requests;
            foreach (var other in replicas.Skip(1))
            {
                using var manifest = await other.Client.GetAsync("/v2/team/app/manifests/1.0");
                Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
                Assert.Equal(image.Digest, manifest.Headers.GetValues("Docker-Content-Digest").Single());
                foreach (var blob in image.Blobs)
                {
                    var pull = await ReplicaSet.PullBlobAsync(other, "team/app", blob.Digest);
                    Assert.True(pull.Ok, pull.Outcome);
                }
            }

            // The other replicas had the tag from the shared record and the bytes from the bucket.
            Assert.Equal(before, upstream.Requests);
            foreach (var blob in image.Blobs)
            {
                Assert.Equal(1, upstream.Count("GET", "/blobs/" + blob.Digest));
            }

            foreach (var replica in replicas)
            {
                var report = await replica.Client.GetFromJsonAsync<JsonObject>("/readyz");
                Assert.Equal("ok", (string?)report!["sharedStore"]);
                Assert.Equal("ok", (string?)report["coordination"]);
            }
        }
        finally
        {
            for (var i = 0; i < replicas.Count; i++)
            {
                log.WriteLine($"--- replica {i}:{Environment.NewLine}{replicas[i].Output.Tail(30)}");
                await replicas[i].DisposeAsync();
            }
        }
    }
}
