using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Builds deterministic test artifacts (same seed → same bytes → same digests) and pushes them with the plain
/// distribution HTTP API (monolithic blob upload, manifest PUT with the exact media type).
/// Layers are real gzip-compressed tar archives that containerd can unpack.
/// </summary>
internal static class OciImageFactory
{
    /// <summary>User-Agent of the push requests (visible in <see cref="RegistryRequest.UserAgent"/>).</summary>
    public const string UserAgent = "mirrorproxy-tests/oci-image-factory";

    public const int SmallLayerSize = 2 * 1024;
    public const int MediumLayerSize = 300 * 1024;
    public const int LargeLayerSize = 3 * 1024 * 1024;

    private static readonly DateTimeOffset s_created = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string s_createdText = "2024-01-01T00:00:00Z";

    private static readonly JsonWriterOptions s_jsonOptions = new()
    {
        // Keep '+' in media types etc. literal (the default encoder would write "tar\u002Bgzip").
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    private static readonly HttpClient s_http = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        // Pushing test content is not what TLS tests examine.
        SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        Timeout = TimeSpan.FromSeconds(120),
        DefaultRequestHeaders = { { "User-Agent", UserAgent } },
    };

    // ----------------------------------------------------------------------------------------------------------------
    // Build (no I/O)
    // ----------------------------------------------------------------------------------------------------------------

    /// <summary>
    /// OCI index with linux/amd64 and linux/arm64/v8 image manifests. Each has its own config and 3 layers:
    /// [0] ~300 KB shared by both platforms, [1] ~2 KB and [2] ~3 MB platform-specific.
    /// </summary>
    public static TestImage BuildMultiArchImage(string repository, string tag, string seed)
    {
        var shared = BuildLayer(OciMediaTypes.ImageLayerTarGzip, $"{seed}/shared", "shared", MediumLayerSize);
        var children = new List<TestManifest>();
        foreach (var platform in new[] { OciPlatform.LinuxAmd64, OciPlatform.LinuxArm64 })
        {
            var platformSeed = $"{seed}/{platform}";
            var layers = new[]
            {
                shared,
                BuildLayer(OciMediaTypes.ImageLayerTarGzip, $"{platformSeed}/small", $"small-{platform.Architecture}", SmallLayerSize),
                BuildLayer(OciMediaTypes.ImageLayerTarGzip, $"{platformSeed}/large", $"large-{platform.Architecture}", LargeLayerSize),
            };
            var config = new OciBlob(OciMediaTypes.ImageConfig, ImageConfigJson(platform, seed, layers));
            children.Add(new TestManifest(OciMediaTypes.ImageManifest, ImageManifestJson(OciMediaTypes.ImageManifest, config, layers, annotations: null), platform, config, layers));
        }

        var index = Json(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", OciMediaTypes.ImageIndex);
            w.WriteStartArray("manifests");
            foreach (var child in children)
            {
                WriteDescriptor(w, child.MediaType, child.Digest, child.Size, child.Platform);
            }

            w.WriteEndArray();
            w.WriteStartObject("annotations");
            w.WriteString("org.mirrorproxy.test.seed", seed);
            w.WriteEndObject();
            w.WriteEndObject();
        });
        return new TestImage(repository, tag, OciMediaTypes.ImageIndex, index, children, singleManifest: null);
    }

    /// <summary>Single-platform Docker schema 2 image: docker config + 3 docker gzip layers (~2 KB, ~300 KB, ~3 MB).</summary>
    public static TestImage BuildDockerImage(string repository, string tag, string seed, OciPlatform? platform = null)
    {
        platform ??= OciPlatform.LinuxAmd64;
        var layers = new[]
        {
            BuildLayer(OciMediaTypes.DockerLayerTarGzip, $"{seed}/docker/small", "docker-small", SmallLayerSize),
            BuildLayer(OciMediaTypes.DockerLayerTarGzip, $"{seed}/docker/medium", "docker-medium", MediumLayerSize),
            BuildLayer(OciMediaTypes.DockerLayerTarGzip, $"{seed}/docker/large", "docker-large", LargeLayerSize),
        };
        var config = new OciBlob(OciMediaTypes.DockerImageConfig, ImageConfigJson(platform, seed, layers));
        var manifest = new TestManifest(OciMediaTypes.DockerManifestV2, ImageManifestJson(OciMediaTypes.DockerManifestV2, config, layers, annotations: null), platform, config, layers);
        return new TestImage(repository, tag, manifest.MediaType, manifest.Content, [], manifest);
    }

    /// <summary>Helm OCI chart: config <c>application/vnd.cncf.helm.config.v1+json</c>, one <c>.tgz</c> layer with <c>mychart/Chart.yaml</c>.</summary>
    public static TestImage BuildHelmChart(string repository, string tag, string seed)
    {
        var version = tag.Length > 0 && char.IsAsciiDigit(tag[0]) ? tag : "0.1.0";
        var description = $"MirrorProxy test chart (seed {seed})";
        var chartYaml = $"""
            apiVersion: v2
            name: mychart
            description: "{description}"
            type: application
            version: {version}
            appVersion: "1.0.0"

            """;
        var valuesYaml = $"""
            replicaCount: 1
            seed: "{seed}"
            blob: "{Convert.ToBase64String(DeterministicData.Bytes(seed + "/helm/values", 96))}"

            """;
        var configMap = """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}-config
            data:
              seed: {{ .Values.seed | quote }}

            """;
        var (content, diffId) = TarGz(
            [
                TarItem.Dir("mychart/"),
                TarItem.File("mychart/Chart.yaml", chartYaml),
                TarItem.File("mychart/values.yaml", valuesYaml),
                TarItem.Dir("mychart/templates/"),
                TarItem.File("mychart/templates/configmap.yaml", configMap),
            ],
            CompressionLevel.Optimal,
            expectedSize: 1024);
        var layer = new OciBlob(OciMediaTypes.HelmChartContent, content, diffId);
        var config = new OciBlob(OciMediaTypes.HelmConfig, Json(w =>
        {
            w.WriteStartObject();
            w.WriteString("name", "mychart");
            w.WriteString("version", version);
            w.WriteString("description", description);
            w.WriteString("apiVersion", "v2");
            w.WriteString("appVersion", "1.0.0");
            w.WriteString("type", "application");
            w.WriteEndObject();
        }));
        var annotations = new Dictionary<string, string>
        {
            ["org.opencontainers.image.created"] = s_createdText,
            ["org.opencontainers.image.description"] = description,
            ["org.opencontainers.image.title"] = "mychart",
            ["org.opencontainers.image.version"] = version,
        };
        var manifest = new TestManifest(OciMediaTypes.ImageManifest, ImageManifestJson(OciMediaTypes.ImageManifest, config, [layer], annotations), platform: null, config, [layer]);
        return new TestImage(repository, tag, manifest.MediaType, manifest.Content, [], manifest);
    }

    /// <summary>Single-platform (linux/amd64) OCI image whose one layer is a gzip tar holding <paramref name="sizeBytes"/> of incompressible data.</summary>
    public static TestImage BuildLargeBlobImage(string repository, string tag, string seed, long sizeBytes)
    {
        var platform = OciPlatform.LinuxAmd64;
        var (content, diffId) = TarGz(
            [
                TarItem.Dir("mirrorproxy/"),
                TarItem.File("mirrorproxy/large/README.txt", $"large blob test layer\nseed={seed}\nsize={sizeBytes}\n"),
                TarItem.Random("mirrorproxy/large/data.bin", $"{seed}/large-blob", sizeBytes),
            ],
            // Random data does not compress; stored deflate blocks are still valid gzip and ~10x faster to produce.
            CompressionLevel.NoCompression,
            expectedSize: sizeBytes + (sizeBytes / 1000) + 4096);
        var layers = new[] { new OciBlob(OciMediaTypes.ImageLayerTarGzip, content, diffId) };
        var config = new OciBlob(OciMediaTypes.ImageConfig, ImageConfigJson(platform, seed, layers));
        var manifest = new TestManifest(OciMediaTypes.ImageManifest, ImageManifestJson(OciMediaTypes.ImageManifest, config, layers, annotations: null), platform, config, layers);
        return new TestImage(repository, tag, manifest.MediaType, manifest.Content, [], manifest);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Build + push
    // ----------------------------------------------------------------------------------------------------------------

    public static Task<TestImage> PushMultiArchImageAsync(TestRegistry registry, string repository, string tag, string seed, CancellationToken cancellationToken = default)
        => PushAsync(registry, BuildMultiArchImage(repository, tag, seed), cancellationToken);

    public static Task<TestImage> PushDockerImageAsync(TestRegistry registry, string repository, string tag, string seed, CancellationToken cancellationToken = default)
        => PushAsync(registry, BuildDockerImage(repository, tag, seed), cancellationToken);

    public static Task<TestImage> PushHelmChartAsync(TestRegistry registry, string repository, string tag, string seed, CancellationToken cancellationToken = default)
        => PushAsync(registry, BuildHelmChart(repository, tag, seed), cancellationToken);

    public static Task<TestImage> PushLargeBlobImageAsync(TestRegistry registry, string repository, string tag, string seed, long sizeBytes = 48L * 1024 * 1024, CancellationToken cancellationToken = default)
        => PushAsync(registry, BuildLargeBlobImage(repository, tag, seed, sizeBytes), cancellationToken);

    public static async Task<TestImage> PushAsync(TestRegistry registry, TestImage image, CancellationToken cancellationToken = default)
    {
        await PushAsync(registry.BaseUri, image, registry.CreateAuthorization(image.Repository), cancellationToken).ConfigureAwait(false);
        return image;
    }

    /// <summary>Pushes all blobs, then child manifests (by digest), then the top-level manifest (by tag).</summary>
    public static Task PushAsync(Uri registryBaseUri, TestImage image, RegistryCredentials? credentials, CancellationToken cancellationToken = default)
        => PushAsync(registryBaseUri, image, authorization: credentials?.ToBasicAuthenticationHeader(), cancellationToken);

    /// <summary>Pushes all blobs, then child manifests (by digest), then the top-level manifest (by tag), with this Authorization header (Basic or Bearer).</summary>
    public static Task PushAsync(Uri registryBaseUri, TestImage image, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken = default)
        => PushAsync(s_http, registryBaseUri, image, authorization, cancellationToken);

    /// <summary>
    /// As above, through <paramref name="http"/>: a client whose connections start elsewhere, such as inside a network
    /// namespace (<see cref="Network.NetworkNamespace.CreateInsideHandler"/>), to push while its cable is pulled.
    /// </summary>
    public static async Task PushAsync(HttpMessageInvoker http, Uri registryBaseUri, TestImage image, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken = default)
    {
        foreach (var blob in image.Blobs)
        {
            await PushBlobAsync(http, registryBaseUri, image.Repository, blob.Content, authorization, cancellationToken).ConfigureAwait(false);
        }

        foreach (var child in image.ChildManifests)
        {
            await PushManifestAsync(http, registryBaseUri, image.Repository, child.Digest, child.MediaType, child.Content, authorization, cancellationToken).ConfigureAwait(false);
        }

        await PushManifestAsync(http, registryBaseUri, image.Repository, image.Tag, image.MediaType, image.ManifestBytes, authorization, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Monolithic upload: <c>POST /v2/&lt;name&gt;/blobs/uploads/</c>, then <c>PUT &lt;Location&gt;&amp;digest=…</c> with the bytes. Returns the digest.</summary>
    public static Task<string> PushBlobAsync(Uri registryBaseUri, string repository, byte[] content, RegistryCredentials? credentials, CancellationToken cancellationToken = default)
        => PushBlobAsync(registryBaseUri, repository, content, authorization: credentials?.ToBasicAuthenticationHeader(), cancellationToken);

    /// <summary>Monolithic upload with this Authorization header (Basic or Bearer). Returns the digest.</summary>
    public static Task<string> PushBlobAsync(Uri registryBaseUri, string repository, byte[] content, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken = default)
        => PushBlobAsync(s_http, registryBaseUri, repository, content, authorization, cancellationToken);

    private static async Task<string> PushBlobAsync(HttpMessageInvoker http, Uri registryBaseUri, string repository, byte[] content, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken)
    {
        var digest = OciMediaTypes.Digest(content);
        Uri location;
        using (var post = new HttpRequestMessage(HttpMethod.Post, new Uri(registryBaseUri, $"v2/{repository}/blobs/uploads/")))
        {
            post.Content = new ByteArrayContent([]);
            post.Headers.Authorization = authorization;
            using var response = await http.SendAsync(post, cancellationToken).ConfigureAwait(false);
            await EnsureStatusAsync(response, HttpStatusCode.Accepted, cancellationToken).ConfigureAwait(false);
            location = new Uri(registryBaseUri, response.Headers.Location ?? throw new InvalidOperationException("Upload POST returned no Location header."));
        }

        var separator = string.IsNullOrEmpty(location.Query) ? "?" : "&";
        using (var put = new HttpRequestMessage(HttpMethod.Put, new Uri(location + separator + "digest=" + Uri.EscapeDataString(digest))))
        {
            put.Content = new ByteArrayContent(content);
            put.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            put.Headers.Authorization = authorization;
            using var response = await http.SendAsync(put, cancellationToken).ConfigureAwait(false);
            await EnsureStatusAsync(response, HttpStatusCode.Created, cancellationToken).ConfigureAwait(false);
        }

        return digest;
    }

    /// <summary><c>PUT /v2/&lt;name&gt;/manifests/&lt;reference&gt;</c> with <c>Content-Type: mediaType</c>; verifies the returned digest.</summary>
    public static Task PushManifestAsync(Uri registryBaseUri, string repository, string reference, string mediaType, byte[] content, RegistryCredentials? credentials, CancellationToken cancellationToken = default)
        => PushManifestAsync(registryBaseUri, repository, reference, mediaType, content, authorization: credentials?.ToBasicAuthenticationHeader(), cancellationToken);

    /// <summary>The manifest PUT with this Authorization header (Basic or Bearer).</summary>
    public static Task PushManifestAsync(Uri registryBaseUri, string repository, string reference, string mediaType, byte[] content, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken = default)
        => PushManifestAsync(s_http, registryBaseUri, repository, reference, mediaType, content, authorization, cancellationToken);

    private static async Task PushManifestAsync(HttpMessageInvoker http, Uri registryBaseUri, string repository, string reference, string mediaType, byte[] content, AuthenticationHeaderValue? authorization, CancellationToken cancellationToken)
    {
        using var put = new HttpRequestMessage(HttpMethod.Put, new Uri(registryBaseUri, $"v2/{repository}/manifests/{reference}"));
        put.Content = new ByteArrayContent(content);
        put.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        put.Headers.Authorization = authorization;
        using var response = await http.SendAsync(put, cancellationToken).ConfigureAwait(false);
        await EnsureStatusAsync(response, HttpStatusCode.Created, cancellationToken).ConfigureAwait(false);
        var expected = OciMediaTypes.Digest(content);
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && values.FirstOrDefault() is { } returned && returned != expected)
        {
            throw new InvalidOperationException($"Registry computed digest {returned} for manifest {repository}:{reference}, expected {expected}.");
        }
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Layers
    // ----------------------------------------------------------------------------------------------------------------

    /// <summary>A gzip tar of roughly <paramref name="approximateSize"/> compressed bytes (mostly incompressible random data plus small text files).</summary>
    public static OciBlob BuildLayer(string mediaType, string seed, string name, int approximateSize)
    {
        var text = $"MirrorProxy test layer\nname={name}\nseed={seed}\n";
        var lines = string.Concat(Enumerable.Range(0, 16).Select(i => $"line {i:D3} of {name}\n"));
        // gzip + tar overhead on top of the random payload is ~150-250 bytes for these few entries.
        var randomSize = Math.Max(64, approximateSize - text.Length - 256);
        var (content, diffId) = TarGz(
            [
                TarItem.Dir("mirrorproxy/"),
                TarItem.Dir($"mirrorproxy/{name}/"),
                TarItem.File($"mirrorproxy/{name}/README.txt", text),
                TarItem.File($"mirrorproxy/{name}/lines.txt", lines),
                TarItem.Random($"mirrorproxy/{name}/random.bin", seed + "/random", randomSize),
            ],
            // Not Fastest: zlib-ng's fastest level uses static Huffman codes and inflates random data by ~5%;
            // Optimal falls back to stored blocks for the random payload, so sizes stay close to the target.
            CompressionLevel.Optimal,
            expectedSize: approximateSize + 1024);
        return new OciBlob(mediaType, content, diffId);
    }

    private static (byte[] Compressed, string DiffId) TarGz(IReadOnlyList<TarItem> items, CompressionLevel level, long expectedSize)
    {
        using var output = new MemoryStream((int)Math.Min(int.MaxValue - 64, Math.Max(4096, expectedSize)));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var gzip = new GZipStream(output, level, leaveOpen: true))
        using (var hashing = new HashingWriteStream(gzip, hash))
        using (var tar = new TarWriter(hashing, TarEntryFormat.Ustar, leaveOpen: true))
        {
            foreach (var item in items)
            {
                var entry = new UstarTarEntry(item.IsDirectory ? TarEntryType.Directory : TarEntryType.RegularFile, item.Path)
                {
                    ModificationTime = s_created,
                    Mode = item.IsDirectory
                        ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
                        : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                    Uid = 0,
                    Gid = 0,
                    UserName = "root",
                    GroupName = "root",
                };
                using var data = item.OpenData();
                if (data is not null)
                {
                    entry.DataStream = data;
                }

                tar.WriteEntry(entry);
            }
        }

        return (output.ToArray(), "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    // ----------------------------------------------------------------------------------------------------------------
    // JSON
    // ----------------------------------------------------------------------------------------------------------------

    private static byte[] ImageConfigJson(OciPlatform platform, string seed, IReadOnlyList<OciBlob> layers) => Json(w =>
    {
        w.WriteStartObject();
        w.WriteString("created", s_createdText);
        w.WriteString("architecture", platform.Architecture);
        if (platform.Variant is not null)
        {
            w.WriteString("variant", platform.Variant);
        }

        w.WriteString("os", platform.Os);
        w.WriteStartObject("config");
        w.WriteStartArray("Env");
        w.WriteStringValue("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        w.WriteEndArray();
        w.WriteStartArray("Cmd");
        w.WriteStringValue("/bin/sh");
        w.WriteEndArray();
        w.WriteStartObject("Labels");
        w.WriteString("org.mirrorproxy.test.seed", seed);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteStartObject("rootfs");
        w.WriteString("type", "layers");
        w.WriteStartArray("diff_ids");
        foreach (var layer in layers)
        {
            w.WriteStringValue(layer.UncompressedDigest);
        }

        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteStartArray("history");
        for (var i = 0; i < layers.Count; i++)
        {
            w.WriteStartObject();
            w.WriteString("created", s_createdText);
            w.WriteString("created_by", $"mirrorproxy-test layer {i}");
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    });

    private static byte[] ImageManifestJson(string mediaType, OciBlob config, IReadOnlyList<OciBlob> layers, IReadOnlyDictionary<string, string>? annotations) => Json(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("schemaVersion", 2);
        w.WriteString("mediaType", mediaType);
        w.WritePropertyName("config");
        WriteDescriptor(w, config.MediaType, config.Digest, config.Size, platform: null);
        w.WriteStartArray("layers");
        foreach (var layer in layers)
        {
            WriteDescriptor(w, layer.MediaType, layer.Digest, layer.Size, platform: null);
        }

        w.WriteEndArray();
        if (annotations is not null)
        {
            w.WriteStartObject("annotations");
            foreach (var (key, value) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
            {
                w.WriteString(key, value);
            }

            w.WriteEndObject();
        }

        w.WriteEndObject();
    });

    private static void WriteDescriptor(Utf8JsonWriter w, string mediaType, string digest, long size, OciPlatform? platform)
    {
        w.WriteStartObject();
        w.WriteString("mediaType", mediaType);
        w.WriteString("digest", digest);
        w.WriteNumber("size", size);
        if (platform is not null)
        {
            w.WriteStartObject("platform");
            w.WriteString("architecture", platform.Architecture);
            w.WriteString("os", platform.Os);
            if (platform.Variant is not null)
            {
                w.WriteString("variant", platform.Variant);
            }

            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, s_jsonOptions))
        {
            write(writer);
        }

        return buffer.ToArray();
    }

    // ----------------------------------------------------------------------------------------------------------------
    // HTTP
    // ----------------------------------------------------------------------------------------------------------------

    private static async Task EnsureStatusAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException(
                $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri} returned {(int)response.StatusCode} {response.StatusCode}, expected {(int)expected}: {body}",
                inner: null,
                response.StatusCode);
        }
    }

    private sealed class TarItem
    {
        private readonly Func<Stream?> _open;

        private TarItem(string path, bool isDirectory, Func<Stream?> open)
        {
            Path = path;
            IsDirectory = isDirectory;
            _open = open;
        }

        public string Path { get; }

        public bool IsDirectory { get; }

        public static TarItem Dir(string path) => new(path, isDirectory: true, () => null);

        public static TarItem File(string path, string content) => new(path, isDirectory: false, () => new MemoryStream(Encoding.UTF8.GetBytes(content), writable: false));

        public static TarItem Random(string path, string seed, long length) => new(path, isDirectory: false, () => new DeterministicDataStream(seed, length));

        public Stream? OpenData() => _open();
    }
}
