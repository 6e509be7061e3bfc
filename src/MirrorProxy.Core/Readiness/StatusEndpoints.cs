using MirrorProxy.Oci;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace MirrorProxy.Readiness;

/// <summary>Read-only status endpoints for operators' tools; they read the cache and never pull.</summary>
internal static class StatusEndpoints
{
    private const int MaxImages = 10_000;

    public static void MapStatusEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/status/images", static async (HttpContext context, ImageCheckService checker, Auth.ClientAuthenticator authenticator) =>
        {
            var (outcome, identity) = await authenticator.AuthenticateAsync(context).ConfigureAwait(false);
            if (outcome == Auth.AuthenticationOutcome.Rejected)
            {
                context.Response.Headers.WWWAuthenticate = authenticator.Challenge;
                return Results.Problem(title: "the credentials were refused", statusCode: StatusCodes.Status401Unauthorized);
            }

            ImageCheckRequest? request;
            try
            {
                request = await context.Request.ReadFromJsonAsync(ImageCheckJsonContext.Default.ImageCheckRequest, context.RequestAborted).ConfigureAwait(false);
            }
            catch (System.Text.Json.JsonException ex)
            {
                return Results.Problem(detail: ex.Message, title: "the body is not an image check request", statusCode: StatusCodes.Status400BadRequest);
            }

            if (request?.Images is not { } images || images.Count > MaxImages)
            {
                return Results.Problem(title: $"give \"images\": a list of at most {MaxImages} references", statusCode: StatusCodes.Status400BadRequest);
            }

            if (!PlatformSelection.TryParse(request.Platforms, out var platforms, out var error))
            {
                return Results.Problem(title: "platforms: " + error, statusCode: StatusCodes.Status400BadRequest);
            }

            var results = await checker.CheckAsync(images, platforms!, identity, context.RequestAborted).ConfigureAwait(false);
            return Results.Json(new ImageCheckResponse(platforms!.ToString(), results), ImageCheckJsonContext.Default.ImageCheckResponse);
        });
    }
}
