using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MirrorProxy.Status;

/// <summary>The status page at <c>/</c> and the services behind it.</summary>
internal static class StatusPageEndpoints
{
    public static IServiceCollection AddMirrorProxyStatus(this IServiceCollection services)
    {
        services.TryAddSingleton<PullFailureLog>();
        services.TryAddSingleton<StatusSnapshotBuilder>();
        return services;
    }

    public static void MapStatusPage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", static async (HttpContext context, StatusSnapshotBuilder builder, Auth.ClientAuthenticator authenticator) =>
        {
            // Anonymous viewers see everything but what they could not pull; credentials (or the admin token) show the rest.
            var (_, viewer) = await authenticator.AuthenticateAsync(context).ConfigureAwait(false);
            var snapshot = await builder.BuildAsync(viewer, context.RequestAborted).ConfigureAwait(false);
            var headers = context.Response.Headers;
            headers.CacheControl = "no-store";
            // Nothing but the page itself and its inline style may load: no script, no remote asset.
            headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
            headers.XContentTypeOptions = "nosniff";
            return Results.Content(StatusPage.Render(snapshot), "text/html; charset=utf-8");
        });
    }
}
