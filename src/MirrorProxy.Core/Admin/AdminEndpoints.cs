using System.Net;
using System.Text.Json;
using MirrorProxy.Resilience;
using MirrorProxy.Selection;
using MirrorProxy.Upstream;
using MirrorProxy.WarmUp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Admin;

/// <summary>
/// Operator endpoints under <c>/admin/</c>. They answer loopback clients only unless <c>Admin:AllowRemote</c>
/// is set (in Kubernetes, <c>kubectl port-forward</c> and <c>exec</c> arrive on loopback).
/// </summary>
internal static class AdminEndpoints
{
    public static void MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var options = app.ServiceProvider.GetRequiredService<IOptions<AdminOptions>>().Value;
        var token = options.TokenFile is { } file ? File.ReadAllText(file).Trim() : options.Token;
        var admin = app.MapGroup("/admin");
        admin.AddEndpointFilter(async (context, next) =>
            options.AllowRemote || IsLoopback(context.HttpContext.Connection.RemoteIpAddress) || HasToken(context.HttpContext.Request, token)
                ? await next(context).ConfigureAwait(false)
                : Results.Json(new AdminError("admin endpoints answer loopback clients, or clients with the admin token"), AdminJsonContext.Default.AdminError, statusCode: StatusCodes.Status403Forbidden));
        admin.MapPinEndpoints();
        admin.MapSeenRepositoryEndpoints();

        admin.MapGet("/offline", static (OfflineMode offline) => Results.Json(new OfflineState(offline.IsEnabled), AdminJsonContext.Default.OfflineState));
        admin.MapPut("/offline", static (OfflineMode offline, bool? enabled) =>
        {
            if (enabled is null)
            {
                return Results.Json(new AdminError("give ?enabled=true or ?enabled=false"), AdminJsonContext.Default.AdminError, statusCode: StatusCodes.Status400BadRequest);
            }

            offline.Set(enabled.Value);
            return Results.Json(new OfflineState(offline.IsEnabled), AdminJsonContext.Default.OfflineState);
        });
        admin.MapGet("/upstreams", static (UpstreamRegistrySet upstreams) => Results.Json(
            upstreams.All.Select(u => new UpstreamState(u.Name, u.Options.Url, u.Resilience.State.ToString().ToLowerInvariant())).ToArray(),
            AdminJsonContext.Default.UpstreamStateArray));
    }

    private static bool IsLoopback(IPAddress? address) => address is null || IPAddress.IsLoopback(address);

    private static bool HasToken(HttpRequest request, string? token)
    {
        if (string.IsNullOrEmpty(token) || request.Headers.Authorization.ToString() is not { Length: > 7 } header || !header.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return false;
        }

        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(header[7..]), System.Text.Encoding.UTF8.GetBytes(token));
    }
}

internal sealed record OfflineState(bool Offline);

internal sealed record UpstreamState(string Name, string Url, string State);

internal sealed record AdminError(string Error);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(OfflineState))]
[System.Text.Json.Serialization.JsonSerializable(typeof(UpstreamState[]))]
[System.Text.Json.Serialization.JsonSerializable(typeof(AdminError))]
internal sealed partial class AdminJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
