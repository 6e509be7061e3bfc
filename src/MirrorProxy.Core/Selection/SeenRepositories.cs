using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using MirrorProxy.Routing;
using MirrorProxy.Storage;

namespace MirrorProxy.Selection;

/// <summary>The answer of <c>GET /admin/repositories?upstream=NAME</c>.</summary>
internal sealed record SeenRepositories(string Upstream, IReadOnlyList<string> Repositories, bool Truncated);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(SeenRepositories))]
[JsonSerializable(typeof(SelectionRecord))]
internal sealed partial class SelectionJsonContext : JsonSerializerContext;

/// <summary>
/// <c>GET /admin/repositories?upstream=NAME[&amp;limit=N]</c>: the repositories of an upstream that the mirror holds
/// tags of, which is what a wildcard in a selection rule is matched against (registries rarely serve their catalog
/// to anonymous clients). Read from the tag documents as the store enumerates them (a repository's tags are
/// together), written out as they are found: memory does not grow with the cache. Bounded by <c>limit</c>.
/// </summary>
internal static class SeenRepositoryEndpoints
{
    public const int DefaultLimit = 10_000;
    public const int MaxLimit = 100_000;

    public static void MapSeenRepositoryEndpoints(this RouteGroupBuilder admin)
    {
        admin.MapGet("/repositories", static async (HttpContext context, UpstreamRouter router, IMetadataStore metadata) =>
        {
            var query = context.Request.Query;
            if (query["upstream"].ToString() is not { Length: > 0 } name || !router.TryGetUpstream(name, out var upstream))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsync("give ?upstream=NAME, the name (or an alias) of a configured upstream\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }

            var limit = DefaultLimit;
            if (query["limit"].ToString() is { Length: > 0 } limitText && (!int.TryParse(limitText, out limit) || limit is < 1 or > MaxLimit))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsync($"limit: a number from 1 to {MaxLimit}\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/json";
            await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
            writer.WriteStartObject();
            writer.WriteString("upstream", upstream.Name);
            writer.WriteStartArray("repositories");
            var count = 0;
            var truncated = false;
            string? previous = null;
            await foreach (var repository in EnumerateAsync(metadata, upstream.Name, context.RequestAborted).ConfigureAwait(false))
            {
                if (repository == previous)
                {
                    continue;
                }

                if (count == limit)
                {
                    truncated = true;
                    break;
                }

                previous = repository;
                writer.WriteStringValue(repository);
                if (++count % 256 == 0)
                {
                    await writer.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                }
            }

            writer.WriteEndArray();
            writer.WriteBoolean("truncated", truncated);
            writer.WriteEndObject();
            await writer.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        });
    }

    /// <summary>The repository of every tag document of an upstream, in the store's order (repeats included).</summary>
    internal static async IAsyncEnumerable<string> EnumerateAsync(IMetadataStore metadata, string upstream, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var key in metadata.EnumerateAsync(MetadataKeys.TagsPrefix + "/" + upstream, cancellationToken).ConfigureAwait(false))
        {
            if (MetadataKeys.TryParseTag(key, out var owner, out var repository, out _) && owner == upstream)
            {
                yield return repository;
            }
        }
    }
}
