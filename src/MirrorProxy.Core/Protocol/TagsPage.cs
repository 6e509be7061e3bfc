using System.Text.Json;

namespace MirrorProxy.Protocol;

/// <summary>Tag list bodies, and pagination for upstreams that ignore <c>n</c> and <c>last</c>.</summary>
internal static class TagsPage
{
    /// <summary>
    /// Shapes an upstream tags answer for the client: the name becomes the one the client asked for. When the
    /// upstream paginated (it sent a Link), its page and link stand; otherwise the mirror sorts the tags in ASCII order
    /// (as the spec asks) and applies <c>last</c> and <c>n</c> itself, with a Link to the next page when there is one.
    /// </summary>
    public static (byte[] Body, string? Link) Paginate(IReadOnlyList<string> tags, string clientName, int? limit, string? last, string? upstreamLink, string? ns)
    {
        if (upstreamLink is not null)
        {
            return (Write(clientName, tags), upstreamLink);
        }

        var remaining = tags.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Where(tag => last is null || string.CompareOrdinal(tag, last) > 0).ToList();
        if (limit is not { } n || remaining.Count <= n)
        {
            return (Write(clientName, remaining), null);
        }

        var page = remaining.Take(n).ToList();
        var link = $"</v2/{clientName}/tags/list?n={n}&last={Uri.EscapeDataString(page[^1])}{(ns is null ? "" : "&ns=" + Uri.EscapeDataString(ns))}>; rel=\"next\"";
        return (Write(clientName, page), link);
    }

    /// <summary><c>{"name":…,"tags":[…]}</c>.</summary>
    public static byte[] Write(string name, IReadOnlyList<string> tags)
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>(64 + name.Length + tags.Sum(t => t.Length + 3));
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            writer.WriteString("name", name);
            writer.WriteStartArray("tags");
            foreach (var tag in tags)
            {
                writer.WriteStringValue(tag);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }
}
