using System.Net;

namespace MirrorProxy.Hosting;

/// <summary>Parses <c>HOST:PORT</c>, <c>:PORT</c>, <c>[v6]:PORT</c> and <c>localhost:PORT</c>.</summary>
internal static class ListenAddress
{
    public static bool TryParse(string? text, out IPEndPoint? endPoint, out string error)
    {
        endPoint = null;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "an address of the form HOST:PORT or :PORT is required";
            return false;
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(text.AsSpan(colon + 1), out var port) || port is < 0 or > 65535)
        {
            error = $"'{text}' is not HOST:PORT or :PORT with a port from 0 to 65535";
            return false;
        }

        var host = text[..colon];
        if (host.Length == 0 || host is "*" or "0.0.0.0" or "[::]")
        {
            endPoint = new IPEndPoint(host is "0.0.0.0" ? IPAddress.Any : IPAddress.IPv6Any, port);
            return true;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            endPoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }

        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            error = $"'{host}' in '{text}' is not an IP address (use an address, 'localhost', or ':PORT' for every interface)";
            return false;
        }

        endPoint = new IPEndPoint(address, port);
        return true;
    }
}
