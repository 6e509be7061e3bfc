using System.Collections;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using MirrorProxy.IntegrationTests.Infrastructure.Network;

namespace MirrorProxy.IntegrationTests.Infrastructure;

internal sealed class TestRegistryOptions
{
    /// <summary>When set, the registry requires HTTP basic auth (htpasswd, bcrypt) with these credentials.</summary>
    public RegistryCredentials? BasicAuth { get; init; }

    public string Realm { get; init; } = "mirrorproxy-test";

    /// <summary>When set (with <see cref="TlsKeyFile"/>), the registry serves HTTPS with this PEM certificate.</summary>
    public string? TlsCertificateFile { get; init; }

    public string? TlsKeyFile { get; init; }

    /// <summary>
    /// When set, the registry runs inside this namespace (<c>ip netns exec</c>) and listens on its address, port
    /// <see cref="NamespacePort"/>; probes and log reads go from inside, so they work with the cable pulled.
    /// </summary>
    public NetworkNamespace? Network { get; init; }

    public int NamespacePort { get; init; } = 5000;

    /// <summary>When set, the registry requires bearer tokens from this server (<c>auth: token:</c>) instead of Basic auth.</summary>
    public TestTokenServer? TokenServer { get; init; }

    /// <summary>Bound for "process started → GET /v2/ answers 200/401".</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// A real CNCF distribution registry (<c>/usr/bin/docker-registry serve</c>) on 127.0.0.1:&lt;free port&gt; with filesystem
/// storage in a temp directory. Captures its logs and parses the access log so tests can count upstream requests.
/// </summary>
internal sealed class TestRegistry : IAsyncDisposable
{
    public const string Executable = "/usr/bin/docker-registry";

    /// <summary>Query parameter used by <see cref="SyncLogAsync"/>; such requests are excluded from all counts.</summary>
    private const string SyncMarkerParameter = "__testregistry_sync";

    private static readonly HttpClient s_probeClient = new(new SocketsHttpHandler
    {
        UseProxy = false,
        // The probe checks liveness only; trust is what the tests examine, through the mirror.
        SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
        PooledConnectionLifetime = TimeSpan.FromSeconds(5),
        ConnectTimeout = TimeSpan.FromSeconds(2),
    })
    {
        Timeout = TimeSpan.FromSeconds(5),
        DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-tests/registry-probe" } },
    };

    private readonly ShortTempDirectory _directory;
    private readonly TestRegistryOptions _options;
    private readonly string _configPath;
    private readonly HttpClient _probeClient;
    private RunningProcess? _process;
    private bool _paused;

    private TestRegistry(ShortTempDirectory directory, TestRegistryOptions options, int port)
    {
        _directory = directory;
        _options = options;
        Port = port;
        _configPath = directory.Combine("config.yml");
        StorageDirectory = directory.Combine("storage");
        Directory.CreateDirectory(StorageDirectory);
        Host = options.Network?.InnerAddress.ToString() ?? "127.0.0.1";
        _probeClient = options.Network is { } network
            ? new HttpClient(network.CreateInsideHandler()) { Timeout = s_probeClient.Timeout, DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-tests/registry-probe" } } }
            : s_probeClient;
    }

    public int Port { get; private set; }

    /// <summary>The address it listens on: 127.0.0.1, or the namespace's address.</summary>
    public string Host { get; }

    /// <summary><c>127.0.0.1:PORT</c> (or the namespace's address and port).</summary>
    public string HostPort => $"{Host}:{Port}";

    /// <summary><c>http://127.0.0.1:PORT/</c>, or <c>https://</c> when the registry serves TLS.</summary>
    public Uri BaseUri => new($"{(_options.TlsCertificateFile is null ? "http" : "https")}://{HostPort}/");

    public RegistryCredentials? Credentials => _options.BasicAuth;

    public TestTokenServer? TokenServer => _options.TokenServer;

    /// <summary>The Authorization header that lets a test push to and pull from <paramref name="repository"/>, or null when the registry is open.</summary>
    public AuthenticationHeaderValue? CreateAuthorization(string repository)
        => _options.TokenServer is { } tokens ? tokens.CreateAuthorization(repository, "pull", "push")
            : _options.BasicAuth?.ToBasicAuthenticationHeader();

    public string StorageDirectory { get; }

    /// <summary>All captured registry output (stdout = access log, stderr = logrus text log), across restarts.</summary>
    public OutputBuffer Log { get; } = new();

    public bool IsRunning => _process is { HasExited: false };

    public bool IsPaused => _paused;

    public static async Task<TestRegistry> StartAsync(TestRegistryOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new TestRegistryOptions();
        var directory = ShortTempDirectory.Create("reg-");
        TestRegistry? registry = null;
        try
        {
            registry = new TestRegistry(directory, options, options.Network is null ? LoopbackPorts.GetFreePort() : options.NamespacePort);
            if (options.BasicAuth is { } credentials)
            {
                await registry.WriteHtpasswdAsync(credentials, cancellationToken).ConfigureAwait(false);
            }

            // The port is picked by binding to port 0 and releasing it; if someone grabbed it in between, pick another.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await registry.StartProcessAsync(cancellationToken).ConfigureAwait(false);
                    return registry;
                }
                catch (RegistryStartException) when (attempt < 3 && options.Network is null && registry.Log.ToString().Contains("address already in use", StringComparison.Ordinal))
                {
                    registry.Port = LoopbackPorts.GetFreePort();
                }
            }
        }
        catch
        {
            if (registry is not null)
            {
                await registry.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                directory.Dispose();
            }

            throw;
        }
    }

    /// <summary><c>127.0.0.1:PORT/repo:tag</c> or <c>127.0.0.1:PORT/repo@sha256:...</c>.</summary>
    public string Reference(string repository, string tagOrDigest)
        => tagOrDigest.Contains(':', StringComparison.Ordinal)
            ? $"{HostPort}/{repository}@{tagOrDigest}"
            : $"{HostPort}/{repository}:{tagOrDigest}";

    /// <summary>An HttpClient with <see cref="BaseUri"/> and (when the registry has auth and <paramref name="authenticated"/>) basic credentials. Caller disposes.</summary>
    public HttpClient CreateHttpClient(bool authenticated = true, TimeSpan? timeout = null)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true } })
        {
            BaseAddress = BaseUri,
            Timeout = timeout ?? TimeSpan.FromSeconds(60),
            DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-tests/client" } },
        };
        if (authenticated && Credentials is { } credentials)
        {
            client.DefaultRequestHeaders.Authorization = credentials.ToBasicAuthenticationHeader();
        }

        return client;
    }

    /// <summary>Kills the registry (SIGKILL). Port, storage and log are kept for <see cref="StartAgainAsync"/>.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        var process = _process;
        _process = null;
        _paused = false;
        if (process is not null)
        {
            await process.KillAsync(cancellationToken).ConfigureAwait(false);
            await process.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Starts the registry again on the same port with the same storage.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (_process is not null)
        {
            throw new InvalidOperationException("The registry is still running; call StopAsync first.");
        }

        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>SIGSTOP: the listening socket stays open, so clients connect but get no answer until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        var process = _process ?? throw new InvalidOperationException("The registry is not running.");
        NativeSignals.Send(process.Id, NativeSignals.SigStop);
        _paused = true;
    }

    /// <summary>SIGCONT.</summary>
    public void Resume()
    {
        var process = _process ?? throw new InvalidOperationException("The registry is not running.");
        NativeSignals.Send(process.Id, NativeSignals.SigCont);
        _paused = false;
    }

    /// <summary>Polls <c>GET /v2/</c> until it answers 200 or 401 (bounded by <see cref="TestRegistryOptions.StartupTimeout"/>).</summary>
    public async Task WaitUntilReadyAsync(CancellationToken cancellationToken = default)
    {
        using var timeoutCts = new CancellationTokenSource(_options.StartupTimeout);
        using var linkedCts = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken);
        var lastError = "no attempt made";
        while (true)
        {
            var process = _process ?? throw new InvalidOperationException("The registry is not running.");
            if (process.HasExited)
            {
                throw new RegistryStartException($"docker-registry exited with code {await process.Exited.ConfigureAwait(false)} before becoming ready. Log:{Environment.NewLine}{Log.Tail(50)}");
            }

            try
            {
                using var response = await _probeClient.GetAsync(new Uri(BaseUri, "v2/"), linkedCts.Token).ConfigureAwait(false);
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized)
                {
                    return;
                }

                lastError = $"HTTP {(int)response.StatusCode}";
            }
            catch (HttpRequestException ex)
            {
                lastError = ex.Message;
            }
            catch (OperationCanceledException) when (!linkedCts.IsCancellationRequested)
            {
                lastError = "probe request timed out";
            }
            catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                break;
            }

            try
            {
                await Task.Delay(100, linkedCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                break;
            }
        }

        throw new RegistryStartException($"Registry at {BaseUri} not ready within {_options.StartupTimeout.TotalSeconds:F0}s (last: {lastError}). Log:{Environment.NewLine}{Log.Tail(50)}");
    }

    /// <summary>Completed requests parsed from the access log captured so far (sync-marker requests excluded).</summary>
    public IReadOnlyList<RegistryRequest> GetRequests()
    {
        var requests = new List<RegistryRequest>();
        foreach (var line in Log.Snapshot())
        {
            if (line.Source == OutputSource.StandardOutput
                && RegistryAccessLog.TryParse(line.Text, out var request)
                && !request.Uri.Contains(SyncMarkerParameter, StringComparison.Ordinal))
            {
                requests.Add(request);
            }
        }

        return requests;
    }

    /// <summary>
    /// Number of completed requests with this method whose request URI (path + query) contains <paramref name="pathSubstring"/>.
    /// Counts what has been logged so far: the registry writes the log line just after the response, so call
    /// <see cref="CountRequestsAsync"/> (or <see cref="SyncLogAsync"/> first) right after a request.
    /// </summary>
    public int CountRequests(string method, string pathSubstring)
        => GetRequests().Count(r => string.Equals(r.Method, method, StringComparison.OrdinalIgnoreCase)
                                    && r.Uri.Contains(pathSubstring, StringComparison.Ordinal));

    /// <summary><see cref="SyncLogAsync"/>, then <see cref="CountRequests"/>.</summary>
    public async Task<int> CountRequestsAsync(string method, string pathSubstring, CancellationToken cancellationToken = default)
    {
        await SyncLogAsync(cancellationToken).ConfigureAwait(false);
        return CountRequests(method, pathSubstring);
    }

    /// <summary>
    /// Sends a marker request (<c>GET /v2/?__testregistry_sync=guid</c>, excluded from counts) and waits (bounded, 10 s) until its
    /// access-log line has been captured, so every request that completed before this call is in the log.
    /// </summary>
    public async Task SyncLogAsync(CancellationToken cancellationToken = default)
    {
        var marker = $"{SyncMarkerParameter}={Guid.NewGuid():N}";
        using var timeoutCts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var linkedCts = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken);
        using (var response = await _probeClient.GetAsync(new Uri(BaseUri, "v2/?" + marker), linkedCts.Token).ConfigureAwait(false))
        {
            // 200 or 401: either way it is logged.
        }

        await Log.WaitForLineAsync(
            l => l.Source == OutputSource.StandardOutput && l.Text.Contains(marker, StringComparison.Ordinal),
            TimeSpan.FromSeconds(10),
            cancellationToken).ConfigureAwait(false);
    }

    public void ClearLog() => Log.Clear();

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        if (_probeClient != s_probeClient)
        {
            _probeClient.Dispose();
        }

        _directory.Dispose();
    }

    public override string ToString() => $"TestRegistry {BaseUri} (storage {StorageDirectory})";

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        await File.WriteAllTextAsync(_configPath, BuildConfig(), cancellationToken).ConfigureAwait(false);
        var environment = new Dictionary<string, string?>();
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            // REGISTRY_* variables override the config file; make sure nothing from the host leaks in.
            if (variable.Key is string key && key.StartsWith("REGISTRY_", StringComparison.Ordinal))
            {
                environment[key] = null;
            }
        }

        var runOptions = new ProcessRunOptions { Environment = environment, WorkingDirectory = _directory.Path };
        _process = _options.Network is { } network
            ? network.StartProcess(Executable, ["serve", _configPath], runOptions, Log)
            : ProcessRunner.Start(Executable, ["serve", _configPath], runOptions, Log);
        try
        {
            await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private async Task WriteHtpasswdAsync(RegistryCredentials credentials, CancellationToken cancellationToken)
    {
        var result = await ProcessRunner.RunAsync(
            "htpasswd",
            ["-Bbn", credentials.Username, credentials.Password],
            TimeSpan.FromSeconds(30),
            cancellationToken).ConfigureAwait(false);
        result.EnsureSuccess();
        await File.WriteAllTextAsync(_directory.Combine("htpasswd"), result.StandardOutput.Trim() + "\n", cancellationToken).ConfigureAwait(false);
    }

    private string BuildConfig()
    {
        // A fixed secret keeps upload state valid across StopAsync/StartAgainAsync (and silences the "no secret" warning).
        var secret = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(_directory.Path)));
        var builder = new StringBuilder();
        builder.Append($"""
            version: 0.1
            log:
              level: info
              formatter: text
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: "{StorageDirectory}"
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            http:
              addr: "{HostPort}"
              secret: "{secret}"

            """);
        if (_options.TlsCertificateFile is not null)
        {
            builder.Append($"""
                  tls:
                    certificate: "{_options.TlsCertificateFile}"
                    key: "{_options.TlsKeyFile}"

                """);
        }
        if (_options.TokenServer is { } tokens)
        {
            builder.Append($"""
                auth:
                  token:
                    realm: "{tokens.Realm}"
                    service: "{tokens.Service}"
                    issuer: "{tokens.Issuer}"
                    rootcertbundle: "{tokens.CertificateFile}"

                """);
        }
        else if (_options.BasicAuth is not null)
        {
            builder.Append($"""
                auth:
                  htpasswd:
                    realm: "{_options.Realm}"
                    path: "{_directory.Combine("htpasswd")}"

                """);
        }

        return builder.ToString();
    }
}

internal sealed class RegistryStartException(string message) : Exception(message);
