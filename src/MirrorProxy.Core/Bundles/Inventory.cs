using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.Oci;

namespace MirrorProxy.Bundles;

/// <summary>What an inventory says about itself.</summary>
internal sealed record InventoryHeader(string MirrorId, DateTimeOffset Created, long Count, string Sha256);

/// <summary>
/// What an island's mirror holds, for cutting the next delta: its identity and the digest of every content
/// object, one per line. Nothing else (no sizes, media types, tags or images), so a million objects take
/// 75 bytes each (about 72 MiB) and the file is written and read as a stream, never held whole:
/// <code>
/// {"mediaType":"application/vnd.mirrorproxy.inventory.v1+json","mirrorId":"…","created":"…","digests":[
/// "sha256:…",
/// …
/// ],"count":1000000}
/// </code>
/// </summary>
internal static class Inventory
{
    public const string MediaType = "application/vnd.mirrorproxy.inventory.v1+json";

    private const int FlushEvery = 4096;

    /// <summary>Streams an inventory of <paramref name="digests"/> to <paramref name="output"/>; returns how many it listed.</summary>
    public static async Task<long> WriteAsync(Stream output, string mirrorId, DateTimeOffset created, IAsyncEnumerable<Digest> digests, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(FlushEvery * 80);
        Write(buffer, $$"""{"mediaType":"{{MediaType}}","mirrorId":{{JsonSerializer.Serialize(mirrorId, BundleJsonContext.Default.String)}},"created":"{{created.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)}}","digests":[""");
        long count = 0;
        await foreach (var digest in digests.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            Write(buffer, count == 0 ? "\n\"" : ",\n\"");
            Write(buffer, digest.Value);
            Write(buffer, "\"");
            if (++count % FlushEvery == 0)
            {
                await output.WriteAsync(buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
                buffer.ResetWrittenCount();
            }
        }

        Write(buffer, $"\n],\"count\":{count.ToString(CultureInfo.InvariantCulture)}}}\n");
        await output.WriteAsync(buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
        return count;
    }

    private static void Write(ArrayBufferWriter<byte> buffer, string text)
    {
        var span = buffer.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        buffer.Advance(Encoding.UTF8.GetBytes(text, span));
    }

    /// <summary>
    /// Reads an inventory as a stream, handing each digest to <paramref name="onDigest"/>; returns the header, or
    /// null with the reason when the file is not an inventory. Memory stays bounded whatever its size.
    /// </summary>
    public static async Task<(InventoryHeader? Header, string Error)> ReadAsync(Stream input, Action<string> onDigest, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var length = 0;
        var state = new JsonReaderState();
        var parse = new ParseState();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var final = false;
        try
        {
            while (!final)
            {
                if (length == buffer.Length)
                {
                    // One token longer than the buffer: no digest is; an inventory never needs more than 1 MiB here.
                    if (buffer.Length >= 1024 * 1024)
                    {
                        return (null, "a value in the inventory is too long");
                    }

                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var read = await input.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                hash.AppendData(buffer, length, read);
                length += read;
                final = read == 0;
                var consumed = Parse(buffer.AsSpan(0, length), final, ref state, parse, onDigest);
                buffer.AsSpan((int)consumed, length - (int)consumed).CopyTo(buffer);
                length -= (int)consumed;
            }
        }
        catch (JsonException ex)
        {
            return (null, "not an inventory: " + ex.Message);
        }

        if (parse.MediaType != MediaType || parse.MirrorId is null || parse.Created is null || !parse.DigestsClosed)
        {
            return (null, $"not a complete inventory (expected mediaType {MediaType}, mirrorId, created and the digests list)");
        }

        if (parse.Count is { } declared && declared != parse.Seen)
        {
            return (null, $"the inventory says it lists {declared} objects but lists {parse.Seen} (truncated?)");
        }

        if (parse.Count is null)
        {
            return (null, "the inventory ends before its count (truncated?)");
        }

        return (new InventoryHeader(parse.MirrorId, parse.Created.Value, parse.Seen, Convert.ToHexStringLower(hash.GetHashAndReset())), "");
    }

    private sealed class ParseState
    {
        public string? Property;
        public bool InDigests;
        public bool DigestsClosed;
        public string? MediaType;
        public string? MirrorId;
        public DateTimeOffset? Created;
        public long? Count;
        public long Seen;
    }

    private static long Parse(ReadOnlySpan<byte> data, bool final, ref JsonReaderState state, ParseState parse, Action<string> onDigest)
    {
        var reader = new Utf8JsonReader(data, final, state);
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName when reader.CurrentDepth == 1:
                    parse.Property = reader.GetString();
                    break;
                case JsonTokenType.StartArray when reader.CurrentDepth == 1 && parse.Property == "digests":
                    parse.InDigests = true;
                    break;
                case JsonTokenType.EndArray when parse.InDigests && reader.CurrentDepth == 1:
                    parse.InDigests = false;
                    parse.DigestsClosed = true;
                    break;
                case JsonTokenType.String when parse.InDigests && reader.CurrentDepth == 2:
                    parse.Seen++;
                    onDigest(reader.GetString()!);
                    break;
                case JsonTokenType.String when reader.CurrentDepth == 1:
                    switch (parse.Property)
                    {
                        case "mediaType":
                            parse.MediaType = reader.GetString();
                            break;
                        case "mirrorId":
                            parse.MirrorId = reader.GetString();
                            break;
                        case "created" when reader.TryGetDateTimeOffset(out var created):
                            parse.Created = created;
                            break;
                    }

                    break;
                case JsonTokenType.Number when reader.CurrentDepth == 1 && parse.Property == "count" && reader.TryGetInt64(out var count):
                    parse.Count = count;
                    break;
            }
        }

        state = reader.CurrentState;
        return reader.BytesConsumed;
    }
}
