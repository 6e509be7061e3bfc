using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Admin;

/// <summary>
/// The operator's bearer token (<c>Admin:Token</c> or <c>Admin:TokenFile</c>, read at start): what remote callers of
/// <c>/admin</c> need, and what lets the warm-up job read every upstream it pins. Compared in constant time.
/// </summary>
internal sealed class AdminToken
{
    private readonly byte[]? _token;

    public AdminToken(IOptions<AdminOptions> options)
    {
        var value = options.Value;
        var token = value.TokenFile is { } file ? File.ReadAllText(file).Trim() : value.Token;
        _token = string.IsNullOrEmpty(token) ? null : Encoding.UTF8.GetBytes(token);
    }

    public bool IsConfigured => _token is not null;

    /// <summary>Whether the request carries <c>Authorization: Bearer &lt;the token&gt;</c>.</summary>
    public bool IsPresentedBy(HttpRequest request)
    {
        if (_token is null || request.Headers.Authorization.ToString() is not { Length: > 7 } header || !header.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[7..]), _token);
    }
}
