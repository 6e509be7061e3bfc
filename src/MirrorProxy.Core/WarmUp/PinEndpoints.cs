using System.Text.Json.Serialization;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace MirrorProxy.WarmUp;

/// <summary>The body of <c>PUT /admin/pins/{name}</c>.</summary>
internal sealed record PinSetRequest(IReadOnlyList<string> Images, string? Platforms)
{
    /// <summary>The selection rules the images were resolved from, recorded with the set.</summary>
    public Selection.SelectionRecord? Selection { get; init; }
}

internal sealed record PinSetSummary(string Name, int Images, int Digests, int Missing, string Platforms, DateTimeOffset UpdatedAt);

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(PinSetRequest))]
[JsonSerializable(typeof(PinSetSummary))]
[JsonSerializable(typeof(PinSetSummary[]))]
internal sealed partial class PinApiJsonContext : JsonSerializerContext;

/// <summary>List, read, replace and delete pin sets under <c>/admin/pins</c>.</summary>
internal static class PinEndpoints
{
    public static void MapPinEndpoints(this RouteGroupBuilder admin)
    {
        admin.MapGet("/pins", static async (PinStore pins, CancellationToken cancellationToken) =>
        {
            var summaries = new List<PinSetSummary>();
            foreach (var set in pins.Sets.OrderBy(s => s.Name, StringComparer.Ordinal))
            {
                summaries.Add(await SummaryAsync(pins, set, cancellationToken).ConfigureAwait(false));
            }

            return Results.Json(summaries.ToArray(), PinApiJsonContext.Default.PinSetSummaryArray);
        });

        admin.MapGet("/pins/{name}", static (string name, PinStore pins) =>
            pins.Get(name) is { } set ? Results.Json(set, PinJsonContext.Default.PinSet) : Results.NotFound());

        admin.MapDelete("/pins/{name}", static async (string name, PinStore pins, CancellationToken cancellationToken) =>
            await pins.DeleteAsync(name, cancellationToken).ConfigureAwait(false) ? Results.NoContent() : Results.NotFound());

        // Replaces the set: the digests pinned are every one reachable now from the listed images (the warm-up
        // has just pulled them); images dropped from the list stop being protected.
        admin.MapPut("/pins/{name}", static async (string name, HttpContext context, PinStore pins, ImageCheckService checker, TimeProvider time) =>
        {
            if (!PinStore.IsValidName(name))
            {
                return Results.Problem(title: "a pin set name is lower-case letters, digits, '.', '_' and '-' (at most 64)", statusCode: StatusCodes.Status400BadRequest);
            }

            PinSetRequest? request;
            try
            {
                request = await context.Request.ReadFromJsonAsync(PinApiJsonContext.Default.PinSetRequest, context.RequestAborted).ConfigureAwait(false);
            }
            catch (System.Text.Json.JsonException ex)
            {
                return Results.Problem(detail: ex.Message, title: "the body is not a pin set", statusCode: StatusCodes.Status400BadRequest);
            }

            if (request?.Images is not { } images || !PlatformSelection.TryParse(request.Platforms, out var platforms, out var error))
            {
                return Results.Problem(title: "give \"images\" and optionally \"platforms\" (linux/amd64,... or all)", statusCode: StatusCodes.Status400BadRequest);
            }

            var results = await checker.CheckAsync(images, platforms!, Auth.ClientIdentity.Operator, context.RequestAborted).ConfigureAwait(false);
            var digests = results.SelectMany(r => r.Content).Select(c => c.Digest).Distinct(StringComparer.Ordinal).ToArray();
            var set = new PinSet(name, [.. images], platforms!.ToString(), time.GetUtcNow(), digests) { Selection = request.Selection };
            if (await pins.PutAsync(set, context.RequestAborted).ConfigureAwait(false) is not Storage.StorageStatus.Ok and var status)
            {
                return Results.Problem(title: $"the pin set could not be stored: {Storage.StorageErrors.Label(status)}", statusCode: StatusCodes.Status503ServiceUnavailable);
            }

            return Results.Json(await SummaryAsync(pins, set, context.RequestAborted).ConfigureAwait(false), PinApiJsonContext.Default.PinSetSummary);
        });
    }

    private static async Task<PinSetSummary> SummaryAsync(PinStore pins, PinSet set, CancellationToken cancellationToken) =>
        new(set.Name, set.Images.Count, set.Digests.Count, await pins.CountMissingAsync(set, cancellationToken).ConfigureAwait(false), set.Platforms, set.UpdatedAt);
}
