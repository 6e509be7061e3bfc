using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Auth;

/// <summary>Who a client is: a user of the htpasswd file, the operator (the admin token), or nobody in particular.</summary>
internal readonly record struct ClientIdentity(string? User, bool IsOperator = false)
{
    public static ClientIdentity Anonymous => default;

    public static ClientIdentity Operator => new(null, IsOperator: true);

    public bool IsAnonymous => User is null && !IsOperator;
}

internal enum AuthenticationOutcome
{
    /// <summary>No credentials (or empty ones, as some clients send before they know better).</summary>
    Anonymous,
    Authenticated,
    /// <summary>Credentials that are wrong: the client is told so, never treated as anonymous.</summary>
    Rejected,
}

/// <summary>
/// Reads HTTP Basic credentials (what containerd, K3s, podman, skopeo and Helm send after a Basic challenge) and
/// checks them against the htpasswd file. Without one, every client is anonymous and credentials are ignored.
/// Accepting a password over plain HTTP from another machine is logged: TLS is what makes Basic safe.
/// </summary>
internal sealed partial class ClientAuthenticator
{
    private static readonly TimeSpan PlainHttpWarningInterval = TimeSpan.FromMinutes(10);

    private readonly HtpasswdUsers? _users;
    private readonly Admin.AdminToken _adminToken;
    private readonly TimeProvider _time;
    private readonly ILogger<ClientAuthenticator> _logger;
    private long _lastPlainHttpWarning = long.MinValue;

    public ClientAuthenticator(IOptions<AuthOptions> options, Admin.AdminToken adminToken, TimeProvider time, ILogger<ClientAuthenticator> logger)
    {
        _adminToken = adminToken;
        _time = time;
        _logger = logger;
        var value = options.Value;
        Challenge = $"Basic realm=\"{value.Realm}\"";
        if (value.HtpasswdFile is { } file)
        {
            _users = new HtpasswdUsers(file, time, logger);
        }
    }

    /// <summary>Whether there are users at all (the operator's token aside).</summary>
    public bool Enabled => _users is { Count: > 0 };

    /// <summary>The <c>WWW-Authenticate</c> value of a 401.</summary>
    public string Challenge { get; }

    public async ValueTask<(AuthenticationOutcome Outcome, ClientIdentity Identity)> AuthenticateAsync(HttpContext context)
    {
        if (_adminToken.IsPresentedBy(context.Request))
        {
            // The warm-up job pulls and checks everything it pins with the operator's token.
            return (AuthenticationOutcome.Authenticated, ClientIdentity.Operator);
        }

        if (_users is null || !TryReadBasic(context.Request.Headers.Authorization.ToString(), out var user, out var password) || user.Length == 0)
        {
            return (AuthenticationOutcome.Anonymous, ClientIdentity.Anonymous);
        }

        if (await _users.CheckAsync(user, password, context.RequestAborted).ConfigureAwait(false) != PasswordCheck.Valid)
        {
            Log.Rejected(_logger, Sanitize(user), context.Connection.RemoteIpAddress?.ToString() ?? "-");
            return (AuthenticationOutcome.Rejected, ClientIdentity.Anonymous);
        }

        if (!context.Request.IsHttps && (context.Connection.RemoteIpAddress is not { } remote || !IPAddress.IsLoopback(remote)))
        {
            WarnPlainHttp(user, context.Connection.RemoteIpAddress?.ToString() ?? "-");
        }

        return (AuthenticationOutcome.Authenticated, new ClientIdentity(user));
    }

    private void WarnPlainHttp(string user, string remote)
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastPlainHttpWarning);
        if ((last == long.MinValue || _time.GetElapsedTime(last, now) >= PlainHttpWarningInterval)
            && Interlocked.CompareExchange(ref _lastPlainHttpWarning, now, last) == last)
        {
            Log.PlainHttp(_logger, Sanitize(user), remote);
        }
    }

    internal static bool TryReadBasic(string header, out string user, out string password)
    {
        user = password = "";
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) || header.Length > 4096)
        {
            return false;
        }

        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = decoded.IndexOf(':');
            if (colon < 0)
            {
                return false;
            }

            user = decoded[..colon];
            password = decoded[(colon + 1)..];
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>A user name as a log can show it: printable, bounded.</summary>
    private static string Sanitize(string user) =>
        new(user.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private static partial class Log
    {
        [LoggerMessage(7010, LogLevel.Warning, "Credentials of user {User} from {Remote} were refused")]
        public static partial void Rejected(ILogger logger, string user, string remote);

        [LoggerMessage(7011, LogLevel.Warning,
            "User {User} authenticated with a password over plain HTTP from {Remote}: anyone on the path can read it. Serve TLS (--tls-cert, --tls-key)")]
        public static partial void PlainHttp(ILogger logger, string user, string remote);
    }
}
