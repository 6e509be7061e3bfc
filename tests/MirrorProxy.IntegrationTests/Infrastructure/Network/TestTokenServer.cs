using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.IntegrationTests.Infrastructure.Network;

internal sealed class TestTokenServerOptions
{
    /// <summary>When set, the server listens inside this namespace (so a pulled cable cuts it off too); else on 127.0.0.1.</summary>
    public NetworkNamespace? Network { get; init; }

    /// <summary>The port inside <see cref="Network"/>; on loopback the system picks one.</summary>
    public int Port { get; init; } = 5001;

    /// <summary>When set, a token is given only for these Basic credentials; else to anyone.</summary>
    public RegistryCredentials? Credentials { get; init; }

    public string Service { get; init; } = "mirrorproxy-test-registry";

    public string Issuer { get; init; } = "mirrorproxy-test-token-server";

    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// A token service in the style of <c>auth.docker.io</c> for a real distribution registry configured with
/// <c>auth: token:</c>: <c>GET /token?service=..&amp;scope=repository:name:pull,push</c> answers an ES256 JWT whose
/// <c>x5c</c> header carries a self-signed certificate that the registry trusts (<see cref="CertificateFile"/>),
/// granting every action asked for. Counts the token requests it receives.
/// </summary>
internal sealed class TestTokenServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ShortTempDirectory _directory;
    private readonly TestTokenServerOptions _options;
    private readonly ECDsa _key;
    private readonly string _certificateBase64;
    private int _requests;
    private int _issued;

    private TestTokenServer(WebApplication app, ShortTempDirectory directory, TestTokenServerOptions options, ECDsa key, X509Certificate2 certificate, Uri baseUri)
    {
        _app = app;
        _directory = directory;
        _options = options;
        _key = key;
        _certificateBase64 = Convert.ToBase64String(certificate.RawData);
        Realm = new Uri(baseUri, "token");
        CertificateFile = directory.Combine("token-signer.crt");
        File.WriteAllText(CertificateFile, certificate.ExportCertificatePem() + "\n");
    }

    /// <summary>The token endpoint, as the registry's <c>realm</c>.</summary>
    public Uri Realm { get; }

    public string Service => _options.Service;

    public string Issuer => _options.Issuer;

    /// <summary>PEM certificate of the signing key: the registry's <c>rootcertbundle</c>.</summary>
    public string CertificateFile { get; }

    /// <summary>Requests to the token endpoint, answered or refused.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Tokens handed out over HTTP.</summary>
    public int TokensIssued => Volatile.Read(ref _issued);

    public static async Task<TestTokenServer> StartAsync(TestTokenServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new TestTokenServerOptions();
        var directory = ShortTempDirectory.Create("tok-");
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        WebApplication? app = null;
        try
        {
            var request = new CertificateRequest($"CN={options.Issuer}", key, HashAlgorithmName.SHA256);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));

            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            if (options.Network is { } network)
            {
                var socket = await network.ListenAsync(options.Port, cancellationToken).ConfigureAwait(false);
                var handle = NetworkNamespace.DetachHandle(socket);
                builder.WebHost.ConfigureKestrel(k => k.ListenHandle(handle));
            }
            else
            {
                builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            }

            app = builder.Build();
            TestTokenServer? self = null;
            app.MapGet("/token", (HttpContext context) => self!.HandleAsync(context));
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var baseUri = options.Network is { } inside
                ? new Uri($"http://{inside.InnerAddress}:{options.Port}/")
                : new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
            self = new TestTokenServer(app, directory, options, key, certificate, baseUri);
            return self;
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }

            key.Dispose();
            directory.Dispose();
            throw;
        }
    }

    /// <summary>A <c>Bearer</c> header for these actions on one repository, made in process (for pushes by the test).</summary>
    public AuthenticationHeaderValue CreateAuthorization(string repository, params string[] actions)
        => new("Bearer", CreateToken("mirrorproxy-test", [("repository", repository, actions.Length == 0 ? ["pull"] : actions)]));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _key.Dispose();
        _directory.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        var subject = "anonymous";
        if (_options.Credentials is { } expected)
        {
            var header = context.Request.Headers.Authorization.ToString();
            if (header != expected.ToBasicAuthenticationHeader().ToString())
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"token\"";
                await context.Response.WriteAsJsonAsync(new { details = "incorrect username or password" }, context.RequestAborted).ConfigureAwait(false);
                return;
            }

            subject = expected.Username;
        }

        var access = new List<(string Type, string Name, string[] Actions)>();
        foreach (var scope in context.Request.Query["scope"])
        {
            // type:name:actions; only the name may hold a colon (never, for repositories, but keep it whole).
            if (scope is { } value && value.IndexOf(':', StringComparison.Ordinal) is var first and > 0 && value.LastIndexOf(':') is var last && last > first)
            {
                access.Add((value[..first], value[(first + 1)..last], value[(last + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries)));
            }
        }

        var token = CreateToken(subject, access);
        Interlocked.Increment(ref _issued);
        await context.Response.WriteAsJsonAsync(
            new Dictionary<string, object>
            {
                ["token"] = token,
                ["access_token"] = token,
                ["expires_in"] = (int)_options.TokenLifetime.TotalSeconds,
                // With a fraction of a second, as Docker Hub's token service writes it: tokens issued within one second stay ordered.
                ["issued_at"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture),
            },
            context.RequestAborted).ConfigureAwait(false);
    }

    private string CreateToken(string subject, IReadOnlyList<(string Type, string Name, string[] Actions)> access)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = Json(writer =>
        {
            writer.WriteString("typ", "JWT");
            writer.WriteString("alg", "ES256");
            writer.WriteStartArray("x5c");
            writer.WriteStringValue(_certificateBase64);
            writer.WriteEndArray();
        });
        var claims = Json(writer =>
        {
            writer.WriteString("iss", _options.Issuer);
            writer.WriteString("sub", subject);
            writer.WriteString("aud", _options.Service);
            writer.WriteNumber("exp", now + (long)_options.TokenLifetime.TotalSeconds);
            writer.WriteNumber("nbf", now - 10);
            writer.WriteNumber("iat", now);
            writer.WriteString("jti", Guid.NewGuid().ToString("N"));
            writer.WriteStartArray("access");
            foreach (var (type, name, actions) in access)
            {
                writer.WriteStartObject();
                writer.WriteString("type", type);
                writer.WriteString("name", name);
                writer.WriteStartArray("actions");
                foreach (var action in actions)
                {
                    writer.WriteStringValue(action);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        });
        var signingInput = Base64Url.EncodeToString(header) + "." + Base64Url.EncodeToString(claims);

        // JWS ES256: the raw r||s signature (IEEE P1363), which is .NET's default format.
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256);
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
