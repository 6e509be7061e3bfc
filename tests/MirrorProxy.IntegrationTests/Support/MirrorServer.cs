using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MirrorProxy.Hosting;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>The real mirror, in process, on a loopback port chosen by the OS.</summary>
internal sealed class MirrorServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private MirrorServer(WebApplication app, Uri baseUri, string cacheDirectory)
    {
        _app = app;
        BaseUri = baseUri;
        CacheDirectory = cacheDirectory;
        Client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false }) { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseUri { get; }

    /// <summary><c>127.0.0.1:port</c>, as clients write it in image references.</summary>
    public string HostPort => $"{BaseUri.Host}:{BaseUri.Port}";

    public string CacheDirectory { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a mirror whose upstreams are <paramref name="upstreams"/> (the first is the default).</summary>
    public static async Task<MirrorServer> StartAsync(
        string cacheDirectory, IEnumerable<(string Name, Uri Url)> upstreams, IDictionary<string, string?>? settings = null, string listen = "127.0.0.1:0")
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["MirrorProxy:Listen"] = listen,
            ["MirrorProxy:Cache:Path"] = cacheDirectory,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var i = 0;
        foreach (var (name, url) in upstreams)
        {
            values[$"MirrorProxy:Upstreams:{i}:Name"] = name;
            values[$"MirrorProxy:Upstreams:{i}:Url"] = url.ToString().TrimEnd('/');
            i++;
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var app = MirrorProxyHost.Build(configuration, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new MirrorServer(app, new Uri(address), cacheDirectory);
    }

    public T GetService<T>() where T : notnull => _app.Services.GetRequiredService<T>();

    /// <summary>Where the file store keeps <paramref name="digest"/> (for tests that damage or remove cached files).</summary>
    public string BlobPath(Oci.Digest digest) => ((Storage.FileContentStore)GetService<Storage.IContentStore>()).Layout.BlobPath(digest);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
