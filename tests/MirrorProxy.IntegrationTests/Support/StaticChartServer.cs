using System.Collections.Concurrent;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>
/// A classic Helm chart repository as a static web server serves one (GitHub Pages, S3, nginx over a directory):
/// files by path, with an ETag (and 304 for If-None-Match), on 127.0.0.1 and a port of its own, behind Basic auth
/// when asked. It logs every request, and can send a file slowly (in two halves) so that concurrent clients overlap.
/// </summary>
internal sealed class StaticChartServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<ServedRequest> _requests = new();
    private WebApplication? _app;

    private StaticChartServer()
    {
    }

    internal sealed record ServedRequest(string Method, string Path, string? Accept, string? UserAgent, string? Authorization, int Status);

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>When set, the <c>Authorization</c> value every request must carry (a private repository behind Basic auth); others get 401.</summary>
    public string? RequiredAuthorization { get; set; }

    /// <summary>Paths sent in two halves with a pause between.</summary>
    public ConcurrentDictionary<string, bool> Slow { get; } = new(StringComparer.Ordinal);

    public IReadOnlyCollection<ServedRequest> Requests => _requests;

    public int Count(string path) => _requests.Count(r => r.Path == path && r.Method == "GET" && r.Status == 200);

    public void Put(string path, byte[] content) => _files[path] = content;

    public static async Task<StaticChartServer> StartAsync()
    {
        var server = new StaticChartServer();
        var (app, uri) = await LoopbackApp.StartAsync(app => app.Run(server.ServeAsync));
        server._app = app;
        server.BaseUri = uri;
        return server;
    }

    private async Task ServeAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "";
        var status = 404;
        try
        {
            if (RequiredAuthorization is { } required && request.Headers.Authorization.ToString() != required)
            {
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"charts\"";
                status = context.Response.StatusCode = 401;
                return;
            }

            if (!_files.TryGetValue(path, out var content))
            {
                context.Response.StatusCode = 404;
                return;
            }

            var etag = $"\"{Convert.ToHexStringLower(SHA256.HashData(content))[..16]}\"";
            context.Response.Headers.ETag = etag;
            if (request.Headers.IfNoneMatch.ToString() == etag)
            {
                status = context.Response.StatusCode = 304;
                return;
            }

            status = context.Response.StatusCode = 200;
            context.Response.ContentType = path.EndsWith(".yaml", StringComparison.Ordinal) ? "text/yaml" : "application/octet-stream";
            context.Response.ContentLength = content.Length;
            if (HttpMethods.IsHead(request.Method))
            {
                return;
            }

            if (Slow.ContainsKey(path))
            {
                await context.Response.Body.WriteAsync(content.AsMemory(0, content.Length / 2));
                await context.Response.Body.FlushAsync();
                await Task.Delay(TimeSpan.FromMilliseconds(500));
                await context.Response.Body.WriteAsync(content.AsMemory(content.Length / 2));
                return;
            }

            await context.Response.Body.WriteAsync(content);
        }
        finally
        {
            _requests.Enqueue(new ServedRequest(request.Method, path, request.Headers.Accept.ToString() is { Length: > 0 } a ? a : null,
                request.Headers.UserAgent.ToString(), request.Headers.Authorization.ToString() is { Length: > 0 } z ? z : null, status));
        }
    }

    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    /// <summary>A chart archive as <c>helm package</c> writes one: a gzip tar of CHART/Chart.yaml, values.yaml and templates (and, to make it large, a data file).</summary>
    public static byte[] ChartArchive(string name, string version, long extraBytes = 0)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, extraBytes > 0 ? CompressionLevel.Fastest : CompressionLevel.Optimal, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string path, byte[] data)
            {
                var entry = new UstarTarEntry(TarEntryType.RegularFile, path) { DataStream = new MemoryStream(data), ModificationTime = DateTimeOffset.UnixEpoch, Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead };
                tar.WriteEntry(entry);
            }

            Add($"{name}/Chart.yaml", Encoding.UTF8.GetBytes($"apiVersion: v2\nname: {name}\ndescription: A test chart\ntype: application\nversion: {version}\nappVersion: \"1.0\"\n"));
            Add($"{name}/values.yaml", Encoding.UTF8.GetBytes($"replicaCount: 1\nimage: registry.test/{name}:{version}\n"));
            Add($"{name}/templates/configmap.yaml", Encoding.UTF8.GetBytes("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  replicas: {{ .Values.replicaCount | quote }}\n"));
            if (extraBytes > 0)
            {
                using var data = new MemoryStream();
                new DeterministicDataStream($"{name}-{version}", extraBytes).CopyTo(data);
                Add($"{name}/files/data.bin", data.ToArray());
            }
        }

        return output.ToArray();
    }

    /// <summary>A provenance file's shape: the chart's metadata and the archive's sha256, clear-signed.</summary>
    public static byte[] Provenance(string name, string version, byte[] archive) => Encoding.UTF8.GetBytes($"""
        -----BEGIN PGP SIGNED MESSAGE-----
        Hash: SHA512

        apiVersion: v2
        name: {name}
        version: {version}

        ...
        files:
          {name}-{version}.tgz: sha256:{Convert.ToHexStringLower(SHA256.HashData(archive))}
        -----BEGIN PGP SIGNATURE-----

        wsBcBAEBCgAQBQJmAAAAAAkQbm90YXNpZ25hdHVyZQAA
        -----END PGP SIGNATURE-----

        """);
}
