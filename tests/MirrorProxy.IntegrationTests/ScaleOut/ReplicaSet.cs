using System.Security.Cryptography;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.ScaleOut;

/// <summary>How the replicas of a test are configured.</summary>
internal sealed record ReplicaSettings
{
    public int Count { get; init; } = 3;

    public TimeSpan TagTtl { get; init; } = TimeSpan.FromMinutes(5);

    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Whether the replicas coordinate through Garnet (false: each works alone on the shared bucket).</summary>
    public bool Coordination { get; init; } = true;

    public string? MaxSharedSize { get; init; }

    public TimeSpan SharedEvictionInterval { get; init; } = TimeSpan.FromMinutes(5);

    public string? LocalMaxSize { get; init; }
}

/// <summary>
/// Several real <c>mirrorproxy serve</c> processes, each with its own cache directory, sharing one bucket of the
/// real Ceph RGW and one Garnet key prefix: replicas as a deployment runs them, on one machine.
/// </summary>
internal sealed class ReplicaSet : IAsyncDisposable
{
    private readonly TempDirectory _work;
    private readonly ITestOutputHelper _output;

    private ReplicaSet(TempDirectory work, ITestOutputHelper output, string bucket, string keyPrefix, List<MirrorProcess> replicas)
    {
        _work = work;
        _output = output;
        Bucket = bucket;
        KeyPrefix = keyPrefix;
        Replicas = replicas;
    }

    public IReadOnlyList<MirrorProcess> Replicas { get; }

    public MirrorProcess this[int i] => Replicas[i];

    public string Bucket { get; }

    /// <summary>The prefix of every coordination key of these replicas.</summary>
    public string KeyPrefix { get; }

    public static async Task<ReplicaSet> StartAsync(ScaleOutEngines engines, Uri upstream, string purpose, ITestOutputHelper output, ReplicaSettings? settings = null)
    {
        settings ??= new ReplicaSettings();
        var work = new TempDirectory("mirrorproxy-replicas");
        var bucket = engines.NewBucketName(purpose);
        var keyPrefix = engines.NewKeyPrefix(purpose);
        var secretFile = work.Combine("s3-secret");
        await File.WriteAllTextAsync(secretFile, engines.Rgw.SecretKey + "\n");
        var config = new
        {
            MirrorProxy = new
            {
                TagTtl = settings.TagTtl.ToString("c"),
                Upstreams = new object[] { new { Name = "docker.io", Url = upstream.ToString().TrimEnd('/') } },
                Cache = new { MaxSize = settings.LocalMaxSize },
                Storage = new
                {
                    S3 = new
                    {
                        Endpoint = engines.Rgw.Endpoint.ToString(),
                        Bucket = bucket,
                        AccessKey = engines.Rgw.AccessKey,
                        SecretKeyFile = secretFile,
                        MaxSize = settings.MaxSharedSize,
                        EvictionInterval = settings.SharedEvictionInterval.ToString("c"),
                        BreakDuration = "00:00:02",
                        RequestTimeout = "00:00:10",
                    },
                },
                Coordination = settings.Coordination
                    ? new { Redis = engines.Garnet.ConnectionString, KeyPrefix = keyPrefix, LeaseDuration = settings.LeaseDuration.ToString("c") }
                    : null,
            },
            Logging = new { LogLevel = new { Default = "Information", MirrorProxy = "Debug" } },
        };
        var configFile = work.Combine("mirror.json");
        await File.WriteAllTextAsync(configFile, JsonSerializer.Serialize(config, new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull }));

        var replicas = new List<MirrorProcess>();
        try
        {
            // One after another: three start-ups at once on two cores only make each one slower.
            for (var i = 0; i < settings.Count; i++)
            {
                replicas.Add(await MirrorProcess.StartAsync(work.Combine($"cache-{i}"), ["--config", configFile]));
            }
        }
        catch
        {
            foreach (var started in replicas)
            {
                await started.DisposeAsync();
            }

            work.Dispose();
            throw;
        }

        return new ReplicaSet(work, output, bucket, keyPrefix, replicas);
    }

    /// <summary>GETs a blob through a replica and returns the sha256 digest of what came, or the failure.</summary>
    public static async Task<(bool Ok, string Outcome)> PullBlobAsync(MirrorProcess replica, string repository, string digest)
    {
        try
        {
            using var response = await replica.Client.GetAsync($"/v2/{repository}/blobs/{digest}", HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                return (false, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            await using var body = await response.Content.ReadAsStreamAsync();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }

            var got = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
            return got == digest ? (true, got) : (false, "wrong bytes: " + got);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return (false, "error: " + ex.GetType().Name + " " + ex.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < Replicas.Count; i++)
        {
            // What each replica logged, for the test's output: how it shared, waited and took over.
            _output.WriteLine($"--- replica {i}:{Environment.NewLine}{Replicas[i].Output.Tail(60)}");
            await Replicas[i].DisposeAsync();
        }

        _work.Dispose();
    }
}
