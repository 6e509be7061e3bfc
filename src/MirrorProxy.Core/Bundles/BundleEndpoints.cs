using MirrorProxy.WarmUp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MirrorProxy.Bundles;

/// <summary>
/// Bundle endpoints under <c>/admin/bundles</c> (the admin group's loopback / token rules apply):
/// <list type="bullet">
/// <item><c>POST /admin/bundles/import?pinSet=NAME[&amp;allowUnsigned=true]</c>: the body is the bundle as a plain tar
/// stream (manifest and signature first); trusted keys come as <c>Bundle-Trust</c> headers (base64 of the
/// SubjectPublicKeyInfo DER). 200 imported, 422 refused, 409 while another import runs, 507 when the cache could not store it. With <c>path=ABSOLUTE-PATH</c>
/// (the bundle's directory or first file, on a disk the mirror itself can read) the mirror reads the bundle from
/// there instead of the body, which saves the copy through HTTP; 400 when it cannot read that path.</item>
/// <item><c>GET /admin/bundles/inventory</c>: this mirror's inventory, streamed.</item>
/// <item><c>POST /admin/bundles/exports</c>: this mirror's identity and the next export sequence number.</item>
/// <item><c>GET /admin/bundles/charts/REPOSITORY/CHART/VERSION</c>: a cached chart version as an export describes it
/// (404 when the repository or the version is unknown, 409 when its archive is not cached).</item>
/// </list>
/// </summary>
internal static class BundleEndpoints
{
    public const string TrustHeader = "Bundle-Trust";

    public static IServiceCollection AddBundles(this IServiceCollection services)
    {
        services.TryAddSingleton<BundleImportTarget>();
        services.TryAddSingleton<BundleCharts>();
        services.TryAddSingleton<BundleImportService>();
        return services;
    }

    public static void MapBundleEndpoints(this RouteGroupBuilder admin)
    {
        admin.MapPost("/bundles/import", static async (HttpContext context, BundleImportService imports, string? pinSet, bool? allowUnsigned, string? path) =>
        {
            pinSet ??= "bundle";
            if (!PinStore.IsValidName(pinSet))
            {
                return Results.Problem(title: "a pin set name is lower-case letters, digits, '.', '_' and '-' (at most 64)", statusCode: StatusCodes.Status400BadRequest);
            }

            var keys = new List<TrustedKey>();
            try
            {
                foreach (var value in context.Request.Headers[TrustHeader].SelectMany(v => (v ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
                {
                    if (BundleSigning.FromSubjectPublicKeyInfo(value) is not { } key)
                    {
                        return Results.Problem(title: $"a {TrustHeader} header is not a base64 P-256 SubjectPublicKeyInfo", statusCode: StatusCodes.Status400BadRequest);
                    }

                    keys.Add(key);
                }

                // A bundle can be many gigabytes: the body is streamed, with no size limit, through bounded buffers.
                if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                {
                    limit.MaxRequestBodySize = null;
                }

                BundleSource? source = null;
                if (path is not null)
                {
                    if (!Path.IsPathFullyQualified(path))
                    {
                        return Results.Problem(title: $"path: '{path}' is not an absolute path", statusCode: StatusCodes.Status400BadRequest);
                    }

                    try
                    {
                        source = BundleSource.Open([path]);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        return Results.Problem(title: $"the mirror cannot read the bundle at {path}: {ex.Message}", statusCode: StatusCodes.Status400BadRequest);
                    }
                }

                BundleImportResult result;
                try
                {
                    await using (source)
                    {
                        result = await imports.ImportAsync(source?.Tar ?? context.Request.Body, new BundleTrust(keys, allowUnsigned == true), pinSet, context.RequestAborted).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    // The client went away mid-upload: what was staged is gone, and nobody waits for an answer.
                    return Results.Empty;
                }

                var status = result.Outcome switch
                {
                    BundleImportOutcome.Imported => StatusCodes.Status200OK,
                    BundleImportOutcome.Busy => StatusCodes.Status409Conflict,
                    // The bundle may be sound: the mirror could not store it (a full or failing disk).
                    _ when result.Refusal == BundleRefusal.StorageFailed => StatusCodes.Status507InsufficientStorage,
                    _ => StatusCodes.Status422UnprocessableEntity,
                };
                return Results.Json(result, BundleApiJsonContext.Default.BundleImportResult, statusCode: status);
            }
            finally
            {
                foreach (var key in keys)
                {
                    key.Dispose();
                }
            }
        });

        admin.MapGet("/bundles/inventory", static async (HttpContext context, BundleImportTarget target, TimeProvider time) =>
        {
            context.Response.ContentType = "application/json";
            var mirrorId = await target.GetMirrorIdAsync(context.RequestAborted).ConfigureAwait(false);
            await Inventory.WriteAsync(context.Response.Body, mirrorId, time.GetUtcNow(), target.EnumerateContentAsync(context.RequestAborted), context.RequestAborted).ConfigureAwait(false);
        });

        admin.MapGet("/bundles/charts/{repository}/{chart}/{version}", static async (string repository, string chart, string version, BundleCharts charts, CancellationToken cancellationToken) =>
        {
            var (status, source) = await charts.DescribeAsync(repository, chart, version, cancellationToken).ConfigureAwait(false);
            return status switch
            {
                ChartDescription.Found => Results.Json(source, BundleApiJsonContext.Default.BundleChartSource),
                ChartDescription.NoRepository => Results.Problem(title: $"no Helm repository named {repository} is configured on this mirror", statusCode: StatusCodes.Status404NotFound),
                ChartDescription.NotListed => Results.Problem(title: $"the cached index of {repository} lists no {chart} {version}", statusCode: StatusCodes.Status404NotFound),
                ChartDescription.NoDigest => Results.Problem(title: $"the index of {repository} gives {chart} {version} no digest: the mirror does not cache it", statusCode: StatusCodes.Status409Conflict),
                _ => Results.Problem(title: $"{chart} {version} of {repository} is not cached", statusCode: StatusCodes.Status409Conflict),
            };
        });

        admin.MapPost("/bundles/exports", static async (HttpContext context, BundleImportTarget target) =>
            Results.Json(
                new BundleExportIdentity(
                    await target.GetMirrorIdAsync(context.RequestAborted).ConfigureAwait(false),
                    await target.NextExportSequenceAsync(context.RequestAborted).ConfigureAwait(false)),
                BundleApiJsonContext.Default.BundleExportIdentity));
    }
}
