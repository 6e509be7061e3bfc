using System.Text.Json;

namespace MirrorProxy.Oci;

/// <summary>Decides the media type a manifest is stored and served with.</summary>
internal static class ManifestMediaType
{
    /// <summary>
    /// The upstream's Content-Type when it names a specific type; otherwise the manifest's own <c>mediaType</c>
    /// field; otherwise inferred from its shape (schema 1, index, or image manifest).
    /// </summary>
    public static string Resolve(string? contentType, ReadOnlySpan<byte> manifest)
    {
        if (contentType is { Length: > 0 } && contentType is not (MediaTypes.Json or "text/plain" or MediaTypes.OctetStream))
        {
            return contentType;
        }

        try
        {
            var reader = new Utf8JsonReader(manifest);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return contentType ?? MediaTypes.OctetStream;
            }

            string? mediaType = null;
            var schemaVersion = 0;
            var hasManifests = false;
            var hasSignatures = false;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.TokenType != JsonTokenType.PropertyName)
                {
                    continue;
                }

                var isMediaType = reader.ValueTextEquals("mediaType"u8);
                var isSchemaVersion = reader.ValueTextEquals("schemaVersion"u8);
                hasManifests |= reader.ValueTextEquals("manifests"u8);
                hasSignatures |= reader.ValueTextEquals("signatures"u8);
                if (!reader.Read())
                {
                    break;
                }

                if (isMediaType && reader.TokenType == JsonTokenType.String)
                {
                    mediaType = reader.GetString();
                }
                else if (isSchemaVersion && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var version))
                {
                    schemaVersion = version;
                }

                // Objects and arrays are skipped whole; scalars need nothing more.
                reader.Skip();
            }

            if (!string.IsNullOrEmpty(mediaType))
            {
                return mediaType;
            }

            if (schemaVersion == 1)
            {
                return hasSignatures ? MediaTypes.DockerSchema1Signed : MediaTypes.DockerSchema1;
            }

            return hasManifests ? MediaTypes.OciIndex : MediaTypes.OciManifest;
        }
        catch (JsonException)
        {
            return contentType ?? MediaTypes.OctetStream;
        }
    }
}
