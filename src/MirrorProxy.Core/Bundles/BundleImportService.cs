using System.Text.Json;
using System.Text.Json.Serialization;
using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Bundles;

/// <summary>How an import ended.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BundleImportOutcome>))]
internal enum BundleImportOutcome
{
    [JsonStringEnumMemberName("imported")]
    Imported,
    [JsonStringEnumMemberName("refused")]
    Refused,
    /// <summary>Another import was running.</summary>
    [JsonStringEnumMemberName("busy")]
    Busy,
}

/// <summary>How an import ended, as the admin endpoint answers it (the outcome and refusal by name).</summary>
internal sealed record BundleImportResult(
    BundleImportOutcome Outcome,
    BundleRefusal? Refusal,
    string Message,
    string? Kind,
    string? SourceMirrorId,
    long Sequence,
    string? SignedBy,
    int Images,
    int Manifests,
    int BlobsImported,
    int BlobsAlreadyPresent,
    long BytesImported,
    long BytesRead,
    int TagsSet,
    int TagsKept,
    string? PinSet,
    int Charts = 0);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(BundleImportResult))]
[JsonSerializable(typeof(BundleExportIdentity))]
[JsonSerializable(typeof(BundleChartSource))]
internal sealed partial class BundleApiJsonContext : JsonSerializerContext;

/// <summary>The identity and sequence number an export is cut with.</summary>
internal sealed record BundleExportIdentity(string MirrorId, long Sequence);

/// <summary>
/// Takes a bundle into the cache. The reader verifies the signature, the file list and every file's hash while
/// staging the new files in the cache's <c>tmp/</c> (files the cache already holds are only hashed); then every
/// descriptor the images need must resolve to a blob in the bundle or in the cache; only then are blobs,
/// manifests (platform manifests before indexes) and tags committed, in that order, and the images pinned. A
/// refused bundle leaves nothing behind; an interrupted one leaves content that is consistent (tags last), and a
/// re-run finishes the job. One import at a time.
/// </summary>
internal sealed partial class BundleImportService
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly BundleImportTarget _target;
    private readonly BundleCharts _charts;
    private readonly UpstreamRouter _router;
    private readonly TimeProvider _time;
    private readonly ILogger<BundleImportService> _logger;
    private readonly CancellationToken _stopping;

    public BundleImportService(
        BundleImportTarget target, BundleCharts charts, UpstreamRouter router, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<BundleImportService> logger)
    {
        _target = target;
        _charts = charts;
        _router = router;
        _time = time;
        _logger = logger;
        _stopping = lifetime.ApplicationStopping;
    }

    public async Task<BundleImportResult> ImportAsync(Stream tar, BundleTrust trust, string pinSet, CancellationToken cancellationToken)
    {
        if (!await _gate.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            return new BundleImportResult(BundleImportOutcome.Busy, null, "another bundle import is running", null, null, 0, null, 0, 0, 0, 0, 0, 0, 0, 0, null);
        }

        var started = _time.GetTimestamp();
        var session = new ImportSession(_target, _charts, _router);
        try
        {
            var read = await BundleReader.ReadAsync(tar, trust, session, null, cancellationToken).ConfigureAwait(false);
            if (!read.Accepted)
            {
                return Refused(read.Refusal, read.Message, read.Manifest, read.SignedBy, read.Bytes);
            }

            var manifest = read.Manifest!;
            var plan = await session.PlanAsync(manifest, cancellationToken).ConfigureAwait(false);
            if (plan.Problem is { } problem)
            {
                return Refused(plan.ProblemKind, problem, manifest, read.SignedBy, read.Bytes);
            }

            // Everything verified: commit, to the end even if the client goes away now.
            int tagsSet, tagsKept;
            try
            {
                (tagsSet, tagsKept) = await CommitAsync(session, plan, manifest, pinSet, _stopping).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                return Refused(BundleRefusal.StorageFailed, ex.Message, manifest, read.SignedBy, read.Bytes);
            }
            Log.Imported(_logger, manifest.Kind, manifest.MirrorId, manifest.Sequence, manifest.Images.Count, session.StagedBlobCount, session.PresentCount, session.StagedBytes,
                _time.GetElapsedTime(started).TotalMilliseconds);
            return new BundleImportResult(BundleImportOutcome.Imported, null, "imported", manifest.Kind, manifest.MirrorId, manifest.Sequence, read.SignedBy,
                manifest.Images.Count, plan.Manifests.Count, session.StagedBlobCount, session.PresentCount, session.StagedBytes, read.Bytes, tagsSet, tagsKept, pinSet,
                manifest.Charts?.Count ?? 0);
        }
        finally
        {
            await session.DeleteStagedAsync().ConfigureAwait(false);
            _gate.Release();
        }

        BundleImportResult Refused(BundleRefusal kind, string message, BundleManifest? manifest, string? signedBy, long bytes)
        {
            Log.Refused(_logger, kind, message);
            return new BundleImportResult(BundleImportOutcome.Refused, kind, message, manifest?.Kind, manifest?.MirrorId, manifest?.Sequence ?? 0, signedBy,
                0, 0, 0, 0, 0, bytes, 0, 0, null);
        }
    }

    private async Task<(int Set, int Kept)> CommitAsync(ImportSession session, ImportPlan plan, BundleManifest manifest, string pinSet, CancellationToken cancellationToken)
    {
        foreach (var blob in session.Staged.Where(b => !plan.ManifestDigests.Contains(b.Digest)))
        {
            Committed(blob, await _target.CommitAsync(blob, plan.OriginOf(blob.Digest), cancellationToken).ConfigureAwait(false));
        }

        foreach (var (digest, mediaType) in plan.Manifests)
        {
            if (session.TryGetStaged(digest, out var blob))
            {
                Committed(blob, await _target.CommitManifestAsync(blob, mediaType, plan.OriginOf(digest), cancellationToken).ConfigureAwait(false));
            }
        }

        int set = 0, kept = 0;
        foreach (var image in manifest.Images)
        {
            ImageReference.TryParse(image.Reference, out var reference, out _);
            if (reference!.Tag is not { } tag || !_router.TryGetUpstream(reference.Registry, out var upstream))
            {
                continue;
            }

            Digest.TryParse(image.Digest, out var digest);
            if (await _target.PutTagAsync(upstream.Name, upstream.NormalizeRepository(reference.Repository), tag, digest, image.MediaType, image.Size, manifest.Created, cancellationToken).ConfigureAwait(false))
            {
                set++;
            }
            else
            {
                kept++;
                Log.TagKept(_logger, image.Reference);
            }
        }

        // Charts as tags are: once their content is in, the repositories' documents name them.
        await _charts.AdoptAsync(manifest, cancellationToken).ConfigureAwait(false);

        var platforms = string.Join(',', manifest.Images.SelectMany(i => i.Platforms).Distinct(StringComparer.Ordinal));
        await _target.PinAsync(pinSet, manifest.Images.Select(i => i.Reference).Concat((manifest.Charts ?? []).Select(c => c.Reference)), plan.Pinned, platforms.Length == 0 ? "all" : platforms, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        await _target.RecordImportedSequenceAsync(manifest.MirrorId, manifest.Sequence, cancellationToken).ConfigureAwait(false);
        return (set, kept);

        static void Committed(StagedBlob blob, StorageStatus status)
        {
            if (status is not (StorageStatus.Ok or StorageStatus.AlreadyExists))
            {
                // Blobs before manifests before tags: what was committed so far is consistent, and a re-run finishes.
                throw new IOException($"{blob.Digest} could not be stored in the cache ({status}); nothing is tagged or pinned yet, import the bundle again once the cache can take it");
            }
        }
    }

    /// <summary>What to commit, or why the bundle cannot be taken.</summary>
    private sealed class ImportPlan
    {
        public string? Problem { get; set; }

        public BundleRefusal ProblemKind { get; set; }

        /// <summary>Manifests to store, platform manifests before the indexes that name them.</summary>
        public List<(Digest Digest, string MediaType)> Manifests { get; } = [];

        public HashSet<Digest> ManifestDigests { get; } = [];

        /// <summary>Every digest the images reach, for the pin set.</summary>
        public List<string> Pinned { get; } = [];

        /// <summary>
        /// The private upstream content belongs to, when every image that reaches it comes from that upstream;
        /// content reached by a public image (or by images of several upstreams) is public, as it would be had
        /// the public upstream brought it.
        /// </summary>
        public Dictionary<Digest, ContentOrigin> Origins { get; } = [];

        public ContentOrigin OriginOf(Digest digest) => Origins.GetValueOrDefault(digest, PublicOrigin);

        public void Reached(Digest digest, ContentOrigin origin)
        {
            if (!Origins.TryGetValue(digest, out var known))
            {
                Origins[digest] = origin;
            }
            else if (!known.IsPublic && known != origin)
            {
                Origins[digest] = origin.IsPublic ? origin : PublicOrigin;
            }
        }

        private static readonly ContentOrigin PublicOrigin = new("bundle", IsPublic: true);
    }

    /// <summary>One import's staging: the sink the reader writes into, and what it staged.</summary>
    private sealed class ImportSession(BundleImportTarget target, BundleCharts charts, UpstreamRouter router) : IBundleSink
    {
        private readonly Dictionary<Digest, StagedBlob> _staged = [];
        private readonly Dictionary<Digest, long> _present = [];
        private readonly Dictionary<string, byte[]> _small = new(StringComparer.Ordinal);

        public int StagedBlobCount => _staged.Count;

        public int PresentCount => _present.Count;

        public long StagedBytes => _staged.Values.Sum(s => s.Size);

        public IEnumerable<StagedBlob> Staged => _staged.Values;

        public async ValueTask<string?> AcceptAsync(BundleManifest manifest, CancellationToken cancellationToken)
        {
            var mirrorId = await target.GetMirrorIdAsync(cancellationToken).ConfigureAwait(false);
            if (manifest.Base is { } @base && @base.MirrorId != mirrorId)
            {
                return $"this delta was cut against the inventory of mirror {@base.MirrorId} ({@base.Created:u}); this mirror is {mirrorId}. " +
                    "Import a full bundle, or cut a delta against this mirror's own inventory (mirrorproxy bundle inventory)";
            }

            var last = await target.LastImportedSequenceAsync(manifest.MirrorId, cancellationToken).ConfigureAwait(false);
            if (manifest.Sequence < last)
            {
                return $"bundle {manifest.Sequence} of mirror {manifest.MirrorId} is older than bundle {last}, already imported: it could move tags back";
            }

            foreach (var image in manifest.Images)
            {
                ImageReference.TryParse(image.Reference, out var reference, out _);
                if (reference!.Tag is not null && !router.TryGetUpstream(reference.Registry, out _))
                {
                    return $"no upstream named {reference.Registry} is configured on this mirror, so {image.Reference} could not be served by tag";
                }
            }

            foreach (var repository in manifest.HelmRepositories ?? [])
            {
                if (!charts.IsConfigured(repository.Name))
                {
                    return $"no Helm repository named {repository.Name} is configured on this mirror, so its charts could not be served: " +
                        $"configure it (--helm-repo {repository.Name}={repository.Url}, or MirrorProxy:HelmRepositories) and import again";
                }
            }

            foreach (var file in manifest.Files)
            {
                if (!BundleLayout.TryParseBlobPath(file.Path, out _) && file.Size > BundleLayout.MaxSmallFileBytes)
                {
                    return $"{file.Path} is {file.Size} bytes, more than {BundleLayout.MaxSmallFileBytes}";
                }
            }

            return null;
        }

        public async ValueTask<Stream?> OpenAsync(BundleFile file, CancellationToken cancellationToken)
        {
            if (!BundleLayout.TryParseBlobPath(file.Path, out var digest))
            {
                return new MemoryStream((int)file.Size);
            }

            if (await target.StatAsync(digest, cancellationToken).ConfigureAwait(false) == file.Size)
            {
                // Already in the cache: hashed as it streams past, not written again.
                _present[digest] = file.Size;
                return null;
            }

            var (blob, content) = await target.StageAsync(digest, file.Size, cancellationToken).ConfigureAwait(false);
            _staged[digest] = blob;
            return content;
        }

        public async ValueTask CompleteAsync(BundleFile file, Stream? destination, CancellationToken cancellationToken)
        {
            if (destination is MemoryStream memory)
            {
                _small[file.Path] = memory.ToArray();
            }
            else if (destination is not null && BundleLayout.TryParseBlobPath(file.Path, out var digest))
            {
                await BundleImportTarget.SealAsync(destination).ConfigureAwait(false);
            }
        }

        public bool TryGetStaged(Digest digest, out StagedBlob blob) => _staged.TryGetValue(digest, out blob!);

        /// <summary>Removes what was staged and not committed.</summary>
        public async ValueTask DeleteStagedAsync()
        {
            foreach (var blob in _staged.Values)
            {
                await BundleImportTarget.AbortAsync(blob).ConfigureAwait(false);
            }
        }

        /// <summary>Checks that every descriptor the images need resolves, and orders the manifests to store.</summary>
        public async Task<ImportPlan> PlanAsync(BundleManifest manifest, CancellationToken cancellationToken)
        {
            var plan = new ImportPlan();
            if (CheckIndex(manifest) is { } indexProblem)
            {
                plan.Problem = indexProblem;
                plan.ProblemKind = BundleRefusal.InvalidManifest;
                return plan;
            }

            var missing = new List<string>();
            var pinned = new HashSet<string>(StringComparer.Ordinal);
            var tops = new List<(Digest, string)>();
            foreach (var image in manifest.Images)
            {
                Digest.TryParse(image.Digest, out var top);
                ImageReference.TryParse(image.Reference, out var reference, out _);
                var origin = router.TryGetUpstream(reference!.Registry, out var upstream) ? upstream.Origin : new ContentOrigin(reference.Registry, IsPublic: true);
                plan.Reached(top, origin);
                var document = await ReadManifestAsync(top, image.MediaType, cancellationToken).ConfigureAwait(false);
                if (document is null)
                {
                    plan.Problem = $"the manifest of {image.Reference} ({top}) is not a readable manifest";
                    plan.ProblemKind = BundleRefusal.InvalidManifest;
                    return plan;
                }

                pinned.Add(top.Value);
                tops.Add((top, image.MediaType));
                if (!document.IsIndex)
                {
                    await CheckBlobsAsync(image.Reference, null, document, origin, plan, missing, pinned, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                var wanted = image.Platforms.ToHashSet(StringComparer.Ordinal);
                foreach (var child in document.Manifests.Where(m => m.Platform is { } p && wanted.Contains(p.ToString())))
                {
                    var label = child.Platform!.ToString();
                    var childDocument = await ResolvesAsync(child.Digest, child.Size, cancellationToken).ConfigureAwait(false) ? await ReadManifestAsync(child.Digest, child.MediaType, cancellationToken).ConfigureAwait(false) : null;
                    if (childDocument is null)
                    {
                        missing.Add($"{label} manifest {child.Digest} of {image.Reference}");
                        continue;
                    }

                    pinned.Add(child.Digest.Value);
                    plan.Reached(child.Digest, origin);
                    if (plan.ManifestDigests.Add(child.Digest))
                    {
                        plan.Manifests.Add((child.Digest, child.MediaType));
                    }

                    await CheckBlobsAsync(image.Reference, label, childDocument, origin, plan, missing, pinned, cancellationToken).ConfigureAwait(false);
                }

                var found = document.Manifests.Where(m => m.Platform is { } p && wanted.Contains(p.ToString())).Select(m => m.Platform!.ToString()).ToHashSet(StringComparer.Ordinal);
                foreach (var absent in wanted.Where(p => !found.Contains(p)))
                {
                    missing.Add($"{absent} of {image.Reference}: the index has no such platform");
                }
            }

            await CheckChartsAsync(manifest, plan, missing, pinned, cancellationToken).ConfigureAwait(false);
            foreach (var (digest, mediaType) in tops)
            {
                if (plan.ManifestDigests.Add(digest))
                {
                    plan.Manifests.Add((digest, mediaType));
                }
            }

            if (missing.Count > 0)
            {
                plan.Problem = $"{missing.Count} pieces of content the images need are neither in the bundle nor in this mirror's cache" +
                    $"{(manifest.Base is { } b ? $" (the delta was cut against the inventory of {b.Created:u}; has content been evicted since? import a full bundle)" : "")}: " +
                    string.Join("; ", missing.Take(5)) + (missing.Count > 5 ? "; …" : "");
                plan.ProblemKind = BundleRefusal.MissingContent;
                return plan;
            }

            plan.Pinned.AddRange(pinned);
            return plan;
        }

        private string? CheckIndex(BundleManifest manifest)
        {
            try
            {
                using var index = JsonDocument.Parse(_small[BundleLayout.IndexFile]);
                var entries = new HashSet<(string, string)>();
                if (index.RootElement.TryGetProperty("manifests", out var manifests) && manifests.ValueKind == JsonValueKind.Array)
                {
                    foreach (var entry in manifests.EnumerateArray())
                    {
                        var digest = entry.TryGetProperty("digest", out var d) ? d.GetString() : null;
                        var name = entry.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object && a.TryGetProperty(BundleLayout.RefNameAnnotation, out var n) ? n.GetString() : null;
                        entries.Add((digest ?? "", name ?? ""));
                    }
                }

                var absent = manifest.Images.FirstOrDefault(i => !entries.Contains((i.Digest, i.Reference)));
                return absent is null ? null : $"index.json does not list {absent.Reference} at {absent.Digest} as the signed manifest does";
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                return "index.json is not an OCI image index: " + ex.Message;
            }
        }

        /// <summary>Each repository's index, and each chart's archive and provenance file, resolve; they are kept as the repository's content.</summary>
        private async Task CheckChartsAsync(BundleManifest manifest, ImportPlan plan, List<string> missing, HashSet<string> pinned, CancellationToken cancellationToken)
        {
            foreach (var repository in manifest.HelmRepositories ?? [])
            {
                var origin = charts.OriginOf(repository.Name)!.Value;
                var content = new List<(string Digest, long Size, string What)> { (repository.IndexDigest, repository.IndexSize, $"the index of Helm repository {repository.Name}") };
                foreach (var chart in (manifest.Charts ?? []).Where(c => c.Repository == repository.Name))
                {
                    content.Add((chart.Digest, chart.Size, $"chart {chart.Reference}"));
                    if (chart.ProvenanceDigest is { } provenance)
                    {
                        content.Add((provenance, chart.ProvenanceSize!.Value, $"the provenance file of {chart.Reference}"));
                    }
                }

                foreach (var (text, size, what) in content)
                {
                    Digest.TryParse(text, out var digest); // valid: checked with the manifest
                    if (await ResolvesAsync(digest, size, cancellationToken).ConfigureAwait(false))
                    {
                        pinned.Add(digest.Value);
                        plan.Reached(digest, origin);
                    }
                    else
                    {
                        missing.Add($"{what} ({digest})");
                    }
                }
            }
        }

        private async Task CheckBlobsAsync(
            string reference, string? platform, ManifestDocument document, ContentOrigin origin, ImportPlan plan, List<string> missing, HashSet<string> pinned, CancellationToken cancellationToken)
        {
            foreach (var blob in document.Blobs)
            {
                if (await ResolvesAsync(blob.Digest, blob.Size, cancellationToken).ConfigureAwait(false))
                {
                    pinned.Add(blob.Digest.Value);
                    plan.Reached(blob.Digest, origin);
                }
                else
                {
                    missing.Add($"{(blob == document.Config ? "config" : "layer")} {blob.Digest} of {reference}{(platform is null ? "" : $" ({platform})")}");
                }
            }
        }

        /// <summary>In the bundle (staged, or hashed and already cached), or in the cache with the descriptor's size.</summary>
        private async ValueTask<bool> ResolvesAsync(Digest digest, long size, CancellationToken cancellationToken)
        {
            if (_staged.TryGetValue(digest, out var staged))
            {
                return size < 0 || staged.Size == size;
            }

            if (_present.TryGetValue(digest, out var present))
            {
                return size < 0 || present == size;
            }

            return await target.StatAsync(digest, cancellationToken).ConfigureAwait(false) is { } cached && (size < 0 || cached == size);
        }

        private async Task<ManifestDocument?> ReadManifestAsync(Digest digest, string mediaType, CancellationToken cancellationToken)
        {
            byte[]? bytes;
            if (_staged.TryGetValue(digest, out var staged))
            {
                if (staged.Size > PullThrough.ManifestService.MaxManifestSize)
                {
                    return null;
                }

                bytes = await BundleImportTarget.ReadStagedAsync(staged, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                bytes = await target.ReadContentAsync(digest, cancellationToken).ConfigureAwait(false);
            }

            return bytes is not null && digest.Matches(bytes) && ManifestDocument.TryParse(bytes, mediaType, out var document) ? document : null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(9001, LogLevel.Information, "Imported {Kind} bundle {Sequence} of mirror {Source}: {Images} images, {Blobs} blobs new ({Bytes} bytes), {Present} already cached, in {ElapsedMs:0} ms")]
        public static partial void Imported(ILogger logger, string kind, string source, long sequence, int images, int blobs, int present, long bytes, double elapsedMs);

        [LoggerMessage(9002, LogLevel.Warning, "Bundle refused ({Refusal}): {Reason}")]
        public static partial void Refused(ILogger logger, BundleRefusal refusal, string reason);

        [LoggerMessage(9003, LogLevel.Information, "Tag {Reference} kept: the cache saw it later than the bundle was cut")]
        public static partial void TagKept(ILogger logger, string reference);
    }
}
