using System.Buffers;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MirrorProxy.Bundles;

/// <summary>Why a bundle was refused. <see cref="None"/> when it was not. Written by name in JSON.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BundleRefusal>))]
internal enum BundleRefusal
{
    None,
    /// <summary>No trusted key was given and unsigned bundles were not allowed.</summary>
    NoTrustedKey,
    /// <summary>The signature is missing or verifies with no trusted key.</summary>
    BadSignature,
    /// <summary>The archive does not begin with the manifest and its signature.</summary>
    NotABundle,
    /// <summary>The signed manifest is not readable or not sound.</summary>
    InvalidManifest,
    /// <summary>An entry name leaves the bundle (<c>..</c>, absolute).</summary>
    UnsafePath,
    /// <summary>A symbolic or hard link, or another entry that is not a plain file.</summary>
    Link,
    /// <summary>A file the signed manifest does not list, or a file listed twice.</summary>
    UnexpectedFile,
    /// <summary>A file whose size or sha256 is not the signed one.</summary>
    FileMismatch,
    /// <summary>The archive ends early or is damaged; or files are missing.</summary>
    Truncated,
    /// <summary>The bundle is sound but this mirror will not take it (another island's delta, older than one imported, …).</summary>
    NotForThisMirror,
    /// <summary>An image needs content that is neither in the bundle nor in the cache.</summary>
    MissingContent,
    /// <summary>The bundle is sound, but what it holds could not be written (the disk is full, say).</summary>
    StorageFailed,
}

/// <summary>How reading a bundle ended.</summary>
internal sealed record BundleReadResult(BundleRefusal Refusal, string Message, BundleManifest? Manifest, string? SignedBy, int Files, long Bytes)
{
    public bool Accepted => Refusal == BundleRefusal.None;
}

/// <summary>Where a bundle's files go while they are verified: the importer stages them, <c>verify</c> discards them.</summary>
internal interface IBundleSink
{
    /// <summary>Called with the verified, parsed manifest before any other file is read. Null to go on, else why not.</summary>
    ValueTask<string?> AcceptAsync(BundleManifest manifest, CancellationToken cancellationToken);

    /// <summary>The stream a file's bytes are copied to while they are hashed; null to hash them only.</summary>
    ValueTask<Stream?> OpenAsync(BundleFile file, CancellationToken cancellationToken);

    /// <summary>Called when a file's bytes verified; the destination (if any) is the one <see cref="OpenAsync"/> returned.</summary>
    ValueTask CompleteAsync(BundleFile file, Stream? destination, CancellationToken cancellationToken);
}

/// <summary>
/// A destination that computes the SHA-256 of what is written to it, as it writes it (the cache's writer does, to
/// verify at commit): the reader takes that hash rather than hashing the same bytes a second time.
/// </summary>
internal interface IHashingDestination
{
    /// <summary>Whether the destination hashes with SHA-256; when not, the reader hashes.</summary>
    bool HashesSha256 { get; }

    /// <summary>The SHA-256 of everything written so far (32 bytes).</summary>
    void GetSha256(Span<byte> hash);
}

/// <summary>The keys a bundle may be signed with, or permission to read it unsigned.</summary>
internal sealed record BundleTrust(IReadOnlyList<TrustedKey> Keys, bool AllowUnsigned);

/// <summary>
/// Reads a bundle from a tar stream, in one pass, with bounded memory. The signature over
/// <c>mirrorproxy-bundle.json</c> is checked before anything else is parsed (both are the first two entries);
/// then every entry must be a plain file the signed manifest lists, named inside the layout, and hash to its
/// signed sha256 while it streams; nothing may be missing at the end.
/// </summary>
internal static class BundleReader
{
    private const int BufferSize = 256 * 1024;

    public static async Task<BundleReadResult> ReadAsync(Stream tar, BundleTrust trust, IBundleSink sink, Action<long>? progress, CancellationToken cancellationToken)
    {
        var state = new ReadState();
        try
        {
            return await ReadCoreAsync(tar, trust, sink, progress, state, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException or FormatException or IOException && !cancellationToken.IsCancellationRequested)
        {
            return Refuse(BundleRefusal.Truncated, $"the archive is truncated or damaged{(state.Current is { } at ? " at " + at : "")}: {ex.Message}", state);
        }
    }

    private sealed class ReadState
    {
        public BundleManifest? Manifest;
        public string? SignedBy;
        public string? Current;
        public int Files;
        public long Bytes;
    }

    private static BundleReadResult Refuse(BundleRefusal refusal, string message, ReadState state) =>
        new(refusal, message, state.Manifest, state.SignedBy, state.Files, state.Bytes);

    private static async Task<BundleReadResult> ReadCoreAsync(Stream tar, BundleTrust trust, IBundleSink sink, Action<long>? progress, ReadState state, CancellationToken cancellationToken)
    {
        if (trust.Keys.Count == 0 && !trust.AllowUnsigned)
        {
            return Refuse(BundleRefusal.NoTrustedKey, "no trusted key was given (--trust KEY.pub); --allow-unsigned takes a bundle without checking who made it", state);
        }

        await using var reader = new TarReader(tar, leaveOpen: true);
        var first = await NextFileEntryAsync(reader, cancellationToken).ConfigureAwait(false);
        if (first is null || BundleLayout.Normalize(first.Name) != BundleLayout.ManifestFile)
        {
            return Refuse(BundleRefusal.NotABundle,
                $"the bundle must begin with {BundleLayout.ManifestFile} and its signature (found {(first is null ? "nothing" : $"'{first.Name}'")}); " +
                "import the bundle directory, or an archive that mirrorproxy wrote", state);
        }

        if (first.Length > BundleLayout.MaxManifestBytes || first.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
        {
            return Refuse(BundleRefusal.InvalidManifest, $"{BundleLayout.ManifestFile} is not a plain file of at most {BundleLayout.MaxManifestBytes} bytes", state);
        }

        var manifestBytes = await ReadAllAsync(first, cancellationToken).ConfigureAwait(false);
        state.Bytes += manifestBytes.Length;

        // The signature must be the next entry; nothing else is looked at until it verifies.
        TarEntry? pending = await NextFileEntryAsync(reader, cancellationToken).ConfigureAwait(false);
        byte[]? signature = null;
        if (pending is not null && BundleLayout.Normalize(pending.Name) == BundleLayout.SignatureFile)
        {
            if (pending.Length > BundleLayout.MaxSignatureBytes)
            {
                return Refuse(BundleRefusal.BadSignature, $"{BundleLayout.SignatureFile} is larger than a signature", state);
            }

            signature = await ReadAllAsync(pending, cancellationToken).ConfigureAwait(false);
            state.Bytes += signature.Length;
            pending = null;
        }

        if (trust.Keys.Count > 0)
        {
            if (signature is null)
            {
                return Refuse(BundleRefusal.BadSignature, $"the bundle has no signature ({BundleLayout.SignatureFile}) and a trusted key was given", state);
            }

            if (BundleSigning.Verify(manifestBytes, signature, trust.Keys) is not { } signer)
            {
                return Refuse(BundleRefusal.BadSignature,
                    $"the signature of {BundleLayout.ManifestFile} does not verify with any trusted key ({string.Join(", ", trust.Keys.Select(k => k.Id))}): " +
                    "the manifest was altered, or the bundle was signed with another key", state);
            }

            state.SignedBy = signer.Id;
        }

        BundleManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize(manifestBytes, BundleJsonContext.Default.BundleManifest);
        }
        catch (JsonException ex)
        {
            return Refuse(BundleRefusal.InvalidManifest, $"{BundleLayout.ManifestFile} is not readable: {ex.Message}", state);
        }

        if (manifest is null)
        {
            return Refuse(BundleRefusal.InvalidManifest, $"{BundleLayout.ManifestFile} is empty", state);
        }

        if (BundleLayout.Validate(manifest) is { } invalid)
        {
            return Refuse(BundleRefusal.InvalidManifest, invalid, state);
        }

        state.Manifest = manifest;
        if (await sink.AcceptAsync(manifest, cancellationToken).ConfigureAwait(false) is { } notForUs)
        {
            return Refuse(BundleRefusal.NotForThisMirror, notForUs, state);
        }

        var expected = manifest.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        // Two buffers: one is written to the destination (which may hash it as it writes) while the next is read.
        byte[][] buffers = [ArrayPool<byte>.Shared.Rent(BufferSize), ArrayPool<byte>.Shared.Rent(BufferSize)];
        try
        {
            while ((pending ?? await NextFileEntryAsync(reader, cancellationToken).ConfigureAwait(false)) is { } entry)
            {
                pending = null;
                var path = BundleLayout.Normalize(entry.Name);
                state.Current = path;
                if (BundleLayout.IsTraversal(path))
                {
                    return Refuse(BundleRefusal.UnsafePath, $"entry '{entry.Name}' points outside the bundle", state);
                }

                if (entry.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
                {
                    return Refuse(BundleRefusal.Link, $"entry '{entry.Name}' is a link (to '{entry.LinkName}'); a bundle holds plain files only", state);
                }

                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile))
                {
                    return Refuse(BundleRefusal.Link, $"entry '{entry.Name}' is a {entry.EntryType}; a bundle holds plain files only", state);
                }

                if (!expected.TryGetValue(path, out var file))
                {
                    return Refuse(BundleRefusal.UnexpectedFile, $"'{entry.Name}' is not listed in the signed manifest", state);
                }

                if (!seen.Add(path))
                {
                    return Refuse(BundleRefusal.UnexpectedFile, $"'{entry.Name}' appears twice", state);
                }

                if (entry.Length != file.Size)
                {
                    return Refuse(BundleRefusal.FileMismatch, $"{path} is {entry.Length} bytes; the signed manifest says {file.Size}", state);
                }

                if (await CopyVerifiedAsync(entry, file, sink, buffers, progress, state, cancellationToken).ConfigureAwait(false) is { } mismatch)
                {
                    return mismatch;
                }

                state.Files++;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffers[0]);
            ArrayPool<byte>.Shared.Return(buffers[1]);
        }

        state.Current = null;
        if (seen.Count != expected.Count)
        {
            var missing = expected.Keys.Where(p => !seen.Contains(p)).ToList();
            return Refuse(BundleRefusal.Truncated,
                $"the bundle ends before {missing.Count} of its {expected.Count} files (truncated, or a part is missing): {string.Join(", ", missing.Take(3))}{(missing.Count > 3 ? ", …" : "")}", state);
        }

        return new BundleReadResult(BundleRefusal.None, "verified", manifest, state.SignedBy, state.Files, state.Bytes);
    }

    private static async Task<BundleReadResult?> CopyVerifiedAsync(
        TarEntry entry, BundleFile file, IBundleSink sink, byte[][] buffers, Action<long>? progress, ReadState state, CancellationToken cancellationToken)
    {
        var destination = await sink.OpenAsync(file, cancellationToken).ConfigureAwait(false);
        var completed = false;
        var writing = Task.CompletedTask;
        try
        {
            // Hashed once, as it streams: by the destination when it hashes what it writes, else here.
            var hashing = destination as IHashingDestination is { HashesSha256: true } selfHashing ? selfHashing : null;
            using var hash = hashing is null ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
            var source = entry.DataStream;
            long copied = 0;
            for (var turn = 0; copied < file.Size; turn ^= 1)
            {
                // Whole buffers: the network hands over a few kilobytes at a time, and a write per piece would cost more than the hash.
                var buffer = buffers[turn];
                var want = (int)Math.Min(buffer.Length, file.Size - copied);
                var read = source is null ? 0 : await source.ReadAtLeastAsync(buffer.AsMemory(0, want), want, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return Refuse(BundleRefusal.Truncated, $"the archive is truncated: it ends inside {file.Path} after {copied} of {file.Size} bytes", state);
                }

                hash?.AppendData(buffer, 0, read);
                if (destination is not null)
                {
                    if (await WrittenAsync(writing, file, state).ConfigureAwait(false) is { } failed)
                    {
                        return failed;
                    }

                    writing = destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).AsTask();
                }

                copied += read;
                state.Bytes += read;
                progress?.Invoke(read);
            }

            if (await WrittenAsync(writing, file, state).ConfigureAwait(false) is { } notWritten)
            {
                return notWritten;
            }

            Span<byte> digest = stackalloc byte[32];
            if (hash is not null)
            {
                hash.GetHashAndReset(digest);
            }
            else
            {
                hashing!.GetSha256(digest);
            }

            if (!Convert.ToHexStringLower(digest).Equals(file.Sha256, StringComparison.Ordinal))
            {
                return Refuse(BundleRefusal.FileMismatch, $"{file.Path} does not hash to its signed sha256 (altered or damaged)", state);
            }

            try
            {
                await sink.CompleteAsync(file, destination, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                return Refuse(BundleRefusal.StorageFailed, $"{file.Path} could not be stored: {ex.Message}", state);
            }

            completed = true;
            return null;
        }
        finally
        {
            if (!completed && destination is not null)
            {
                try
                {
                    await writing.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    // The file is being discarded.
                }

                await destination.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Waits for the previous write; a failure to write is the destination's, not the bundle's.</summary>
    private static async Task<BundleReadResult?> WrittenAsync(Task writing, BundleFile file, ReadState state)
    {
        try
        {
            await writing.ConfigureAwait(false);
            return null;
        }
        catch (IOException ex)
        {
            return Refuse(BundleRefusal.StorageFailed, $"{file.Path} could not be written: {ex.Message}", state);
        }
    }

    /// <summary>The next entry that is not a directory of the layout or a global header.</summary>
    private static async Task<TarEntry?> NextFileEntryAsync(TarReader reader, CancellationToken cancellationToken)
    {
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            if (entry.EntryType == TarEntryType.GlobalExtendedAttributes)
            {
                continue;
            }

            if (entry.EntryType == TarEntryType.Directory && BundleLayout.Normalize(entry.Name).TrimEnd('/') is "" or "." or "blobs" or "blobs/sha256")
            {
                continue;
            }

            return entry;
        }

        return null;
    }

    private static async Task<byte[]> ReadAllAsync(TarEntry entry, CancellationToken cancellationToken)
    {
        var bytes = new byte[entry.Length];
        if (entry.DataStream is { } data)
        {
            await data.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        else if (bytes.Length > 0)
        {
            throw new EndOfStreamException($"{entry.Name} has no data");
        }

        return bytes;
    }
}
