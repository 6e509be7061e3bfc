using System.Net;
using System.Text.Json;
using MirrorProxy.Bundles;
using MirrorProxy.Hosting;
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
        var token = app.ServiceProvider.GetRequiredService<AdminToken>();
        var admin = app.MapGroup("/admin");
        if (ListenAddress.TryParse(options.Listen, out var adminEndPoint, out _))
        {
            // A listener of their own, kept out of the Service that nodes use: the main listener does not answer /admin.
            admin.RequireHost($"*:{adminEndPoint!.Port}");
        }

        admin.AddEndpointFilter(async (context, next) =>
            IsLoopback(context.HttpContext.Connection.RemoteIpAddress) || token.IsPresentedBy(context.HttpContext.Request)
                ? await next(context).ConfigureAwait(false)
                : Results.Json(new AdminError("admin endpoints answer loopback clients, and others with the admin token"), AdminJsonContext.Default.AdminError,
                    statusCode: StatusCodes.Status403Forbidden));
        admin.MapPinEndpoints();
        admin.MapBundleEndpoints();
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
        // Names, URLs (which never carry credentials: refused at start) and state; never a user name or password.
        admin.MapGet("/upstreams", static (UpstreamRegistrySet upstreams) => Results.Json(
            upstreams.All.Select(u => new UpstreamState(u.Name, u.Options.Url, u.Resilience.State.ToString().ToLowerInvariant(), !u.IsPublic)).ToArray(),
            AdminJsonContext.Default.UpstreamStateArray));
    }

    /// <summary>A loopback socket. An address the server does not know is not one.</summary>
    private static bool IsLoopback(IPAddress? address) => address is not null && IPAddress.IsLoopback(address);
}

internal sealed record OfflineState(bool Offline);

internal sealed record UpstreamState(string Name, string Url, string State, bool Private);

internal sealed record AdminError(string Error);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(OfflineState))]
[System.Text.Json.Serialization.JsonSerializable(typeof(UpstreamState[]))]
[System.Text.Json.Serialization.JsonSerializable(typeof(AdminError))]
internal sealed partial class AdminJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
