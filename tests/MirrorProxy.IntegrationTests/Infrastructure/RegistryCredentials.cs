using System.Net.Http.Headers;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure;

internal sealed record RegistryCredentials(string Username, string Password)
{
    /// <summary><c>user:pass</c>, the form skopeo's <c>--creds</c>/<c>--src-creds</c> and ctr's <c>--user</c> take.</summary>
    public string UserColonPassword => $"{Username}:{Password}";

    public AuthenticationHeaderValue ToBasicAuthenticationHeader()
        => new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(UserColonPassword)));

    public override string ToString() => $"{Username}:***";
}
