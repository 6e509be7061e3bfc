using System.Buffers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using MirrorProxy.Common;
using MirrorProxy.Helm;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Selection;
using MirrorProxy.WarmUp;

namespace MirrorProxy.Bundles;

/// <summary>What an export is asked to do.</summary>
internal sealed record BundleExportRequest(
    IReadOnlyList<string> Images, PlatformSelection Platforms, string? InventoryPath, ECDsa SigningKey, string Output, long? SplitSize, SelectionRecord? Selection = null);

/// <summary>How an export ended.</summary>
internal sealed record BundleExportResult(
    string? Error,
    IReadOnlyList<string> ImageErrors,
    BundleManifest? Manifest,
    int Manifests,
    int Blobs,
    long Bytes,
    long BlobsOmitted,
    long BytesOmitted,
    IReadOnlyList<string> Written)
{
    public bool Succeeded => Error is null && ImageErrors.Count == 0;
}

/// <summary>Receives progress while a bundle is exported.</summary>
internal interface IBundleProgress
{
    void Resolved(string image, string? error);

    void Writing(long totalBytes);

    void Advanced(long bytes);
}

/// <summary>
/// Cuts a bundle from a running mirror through its <c>/v2</c> API, so the mirror pulls whatever it lacks, as
/// <c>warm</c> does: each image's manifest (by tag or digest), the selected platforms' manifests of an index,
/// and their config and layer blobs. Helm chart references are warmed the same way through <c>/helm</c>; each
/// carries its archive and provenance file, and each repository the index the mirror serves for it. With an
/// island inventory, blobs the island already holds are left out (a delta); manifests and chart indexes always
/// go in. Every byte is checked against its digest on the way to the bundle.
/// </summary>
internal sealed class BundleExporter(HttpClient http, TimeProvider time)
{
    private static readonly JsonWriterOptions s_indexJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private sealed record ResolvedManifest(Digest Digest, string MediaType, byte[] Content, string Repository, string Registry);

    /// <summary>A blob and the mirror's URL path it is read from.</summary>
    private sealed record ResolvedBlob(Digest Digest, long Size, string Path);

    private sealed class ResolvedImage(string reference)
    {
        public string Reference { get; } = reference;

        public ResolvedManifest? Top { get; set; }

        public List<string> Platforms { get; } = [];

        public List<ResolvedManifest> Children { get; } = [];

        public List<ResolvedBlob> Blobs { get; } = [];
    }

    public async Task<BundleExportResult> ExportAsync(BundleExportRequest request, IBundleProgress progress, CancellationToken cancellationToken)
    {
        BundleExportIdentity identity;
        using (var answer = await http.PostAsync("/admin/bundles/exports", null, cancellationToken).ConfigureAwait(false))
        {
            if (!answer.IsSuccessStatusCode)
            {
                return Failed($"the mirror refused to number the export ({(int)answer.StatusCode}): {await answer.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}");
            }

            identity = (await answer.Content.ReadFromJsonAsync(BundleApiJsonContext.Default.BundleExportIdentity, cancellationToken).ConfigureAwait(false))!;
        }

        var images = new List<ResolvedImage>();
        var charts = new List<BundleChartSource>();
        var errors = new List<string>();
        foreach (var chart in request.Images.Where(ChartReference.IsChart))
        {
            var (source, error) = await ResolveChartAsync(chart, cancellationToken).ConfigureAwait(false);
            progress.Resolved(chart, error);
            if (error is not null)
            {
                errors.Add($"{chart}: {error}");
            }
            else if (!charts.Any(c => c.Chart.Reference == source!.Chart.Reference))
            {
                charts.Add(source!);
            }
        }

        var repositories = new List<(BundleHelmRepository Repository, byte[] Index)>();
        foreach (var group in charts.GroupBy(c => c.Chart.Repository, StringComparer.Ordinal))
        {
            var (chartIndex, error) = await FetchChartIndexAsync(group.Key, cancellationToken).ConfigureAwait(false);
            if (error is not null)
            {
                errors.Add($"{SelectionTarget.ChartPrefix}{group.Key}: the index: {error}");
                continue;
            }

            var digest = Digest.ComputeSha256(chartIndex!);
            repositories.Add((new BundleHelmRepository(group.Key, group.First().RepositoryUrl, digest.Value, chartIndex!.Length), chartIndex));
        }

        foreach (var image in request.Images.Where(i => !ChartReference.IsChart(i)))
        {
            var (resolved, error) = await ResolveAsync(image, request.Platforms, cancellationToken).ConfigureAwait(false);
            progress.Resolved(image, error);
            if (error is not null)
            {
                errors.Add($"{image}: {error}");
            }
            else
            {
                images.Add(resolved!);
            }
        }

        if (errors.Count > 0)
        {
            return new BundleExportResult(null, errors, null, 0, 0, 0, 0, 0, []);
        }

        // Distinct content, first repository that named it (the mirror fetches a blob through a repository that has it).
        var manifests = new Dictionary<Digest, ResolvedManifest>();
        var blobs = new Dictionary<Digest, ResolvedBlob>();
        foreach (var image in images)
        {
            foreach (var manifest in image.Children.Append(image.Top!))
            {
                manifests.TryAdd(manifest.Digest, manifest);
            }

            foreach (var blob in image.Blobs)
            {
                blobs.TryAdd(blob.Digest, blob);
            }
        }

        foreach (var chart in charts.Select(c => c.Chart))
        {
            var reference = new ChartReference(chart.Repository, chart.Chart, chart.Version);
            var archive = ParseDigest(chart.Digest);
            blobs.TryAdd(archive, new ResolvedBlob(archive, chart.Size, ChartWarmUp.ChartPath(reference, chart.Version)));
            if (chart.ProvenanceDigest is { } provenanceText)
            {
                var provenance = ParseDigest(provenanceText);
                blobs.TryAdd(provenance, new ResolvedBlob(provenance, chart.ProvenanceSize!.Value, ChartWarmUp.ChartPath(reference, chart.Version) + ".prov"));
            }
        }

        BundleBase? @base = null;
        long bytesOmitted = 0;
        if (request.InventoryPath is { } inventoryPath)
        {
            var present = new HashSet<Digest>();
            await using var inventory = new FileStream(inventoryPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            var (header, error) = await Inventory.ReadAsync(inventory, digest =>
            {
                if (Digest.TryParse(digest, out var parsed) && blobs.ContainsKey(parsed))
                {
                    present.Add(parsed);
                }
            }, cancellationToken).ConfigureAwait(false);
            if (header is null)
            {
                return Failed($"--inventory: {error}");
            }

            foreach (var digest in present)
            {
                bytesOmitted += blobs[digest].Size;
                blobs.Remove(digest);
            }

            @base = new BundleBase(header.MirrorId, header.Created, header.Count, header.Sha256, present.Count);
        }

        var index = IndexJson(images);
        var contents = new List<BundleContent>
        {
            InMemory(BundleLayout.OciLayoutFile, BundleLayout.OciLayoutContent),
            InMemory(BundleLayout.IndexFile, index),
        };
        contents.AddRange(manifests.Values.Select(m => InMemory(BundleLayout.BlobPath(m.Digest), m.Content)));
        var indexes = repositories.DistinctBy(r => r.Repository.IndexDigest, StringComparer.Ordinal).ToList();
        contents.AddRange(indexes.Select(r => InMemory(BundleLayout.BlobPath(ParseDigest(r.Repository.IndexDigest)), r.Index)));
        contents.AddRange(blobs.Values.Select(b => new BundleContent(
            new BundleFile(BundleLayout.BlobPath(b.Digest), b.Size, b.Digest.Encoded.ToString()),
            ct => OpenBlobAsync(b, ct))));

        var manifestDocument = new BundleManifest(
            charts.Count > 0 ? BundleManifest.CurrentFormatVersion : BundleManifest.ImagesOnlyFormatVersion,
            @base is null ? BundleManifest.FullKind : BundleManifest.DeltaKind,
            identity.MirrorId,
            time.GetUtcNow(),
            identity.Sequence,
            @base,
            images.Select(i => new BundleImage(i.Reference, i.Top!.Digest.Value, i.Top.MediaType, i.Top.Content.Length, i.Platforms)).ToList(),
            contents.Select(c => c.File).ToList(),
            repositories.Count > 0 ? [.. repositories.Select(r => r.Repository)] : null,
            charts.Count > 0 ? [.. charts.Select(c => c.Chart)] : null,
            request.Selection);
        var manifestBytes = JsonSerializer.SerializeToUtf8Bytes(manifestDocument, BundleJsonContext.Default.BundleManifest);
        var signature = BundleSigning.Sign(request.SigningKey, manifestBytes);
        var total = contents.Sum(c => c.File.Size);
        progress.Writing(total);
        var written = await BundleOutput.WriteAsync(request.Output, request.SplitSize, manifestBytes, signature, contents, progress.Advanced, cancellationToken).ConfigureAwait(false);
        return new BundleExportResult(null, [], manifestDocument, manifests.Count, blobs.Count + indexes.Count, total, @base?.Omitted ?? 0, bytesOmitted, written);
    }

    private static BundleExportResult Failed(string error) => new(error, [], null, 0, 0, 0, 0, 0, []);

    private static Digest ParseDigest(string text) => Digest.TryParse(text, out var digest) && !digest.IsSha512
        ? digest
        : throw new InvalidDataException($"the mirror described a chart with '{text}', which is no sha256 digest");

    /// <summary>
    /// A chart reference warmed through the mirror (index, archive and provenance file in its cache, the version
    /// resolved), then described by it: digest, size, upstream URL, provenance file.
    /// </summary>
    private async Task<(BundleChartSource? Source, string? Error)> ResolveChartAsync(string text, CancellationToken cancellationToken)
    {
        var warmed = await ChartWarmUp.WarmAsync(http, text, NoWarmUpProgress.Instance, cancellationToken).ConfigureAwait(false);
        if (!warmed.Succeeded || !ChartReference.TryParse(warmed.Reference ?? "", out var resolved, out _) || resolved!.Version is not { } version)
        {
            return (null, warmed.Error ?? "the mirror could not resolve it to a chart version");
        }

        using var response = await http.GetAsync(
            $"/admin/bundles/charts/{Uri.EscapeDataString(resolved.Repository)}/{Uri.EscapeDataString(resolved.Chart)}/{Uri.EscapeDataString(version)}", cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return (null, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}".Trim());
        }

        var source = await response.Content.ReadFromJsonAsync(BundleApiJsonContext.Default.BundleChartSource, cancellationToken).ConfigureAwait(false);
        return source is null ? (null, "the mirror described it with nothing") : (source, null);
    }

    /// <summary>The index the mirror serves for a Helm repository (chart URLs rewritten to the mirror's), whole, as the island will serve it.</summary>
    private async Task<(byte[]? Index, string? Error)> FetchChartIndexAsync(string repository, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/helm/{Uri.EscapeDataString(repository)}/index.yaml");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return (null, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}".Trim());
        }

        if (response.Content.Headers.ContentLength > HelmIndexService.MaxIndexSize)
        {
            return (null, $"larger than {HelmIndexService.MaxIndexSize} bytes");
        }

        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        await new LimitedStream(body, HelmIndexService.MaxIndexSize).CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        return (buffer.ToArray(), null);
    }

    private sealed class NoWarmUpProgress : IWarmUpProgress
    {
        public static readonly NoWarmUpProgress Instance = new();

        public void Started(string image)
        {
        }

        public void Advanced(string image, long bytesFetched, long bytesToFetch)
        {
        }

        public void Finished(WarmImageResult result)
        {
        }
    }

    private static BundleContent InMemory(string path, byte[] content) =>
        new(new BundleFile(path, content.Length, Convert.ToHexStringLower(SHA256.HashData(content))), _ => Task.FromResult<Stream>(new MemoryStream(content, writable: false)));

    /// <summary><c>index.json</c>: one entry per image, named by its full reference for containerd and for skopeo.</summary>
    private static byte[] IndexJson(List<ResolvedImage> images)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, s_indexJson))
        {
            writer.WriteStartObject();
            writer.WriteNumber("schemaVersion", 2);
            writer.WriteString("mediaType", MediaTypes.OciIndex);
            writer.WriteStartArray("manifests");
            foreach (var image in images)
            {
                writer.WriteStartObject();
                writer.WriteString("mediaType", image.Top!.MediaType);
                writer.WriteString("digest", image.Top.Digest.Value);
                writer.WriteNumber("size", image.Top.Content.Length);
                writer.WriteStartObject("annotations");
                writer.WriteString(BundleLayout.ContainerdNameAnnotation, image.Reference);
                writer.WriteString(BundleLayout.RefNameAnnotation, image.Reference);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private async Task<(ResolvedImage? Image, string? Error)> ResolveAsync(string text, PlatformSelection platforms, CancellationToken cancellationToken)
    {
        if (!ImageReference.TryParse(text, out var reference, out var error))
        {
            return (null, error);
        }

        var image = new ResolvedImage(reference!.ToString());
        var (top, topError) = await FetchManifestAsync(reference.Registry, reference.Repository, reference.Reference, reference.Digest, cancellationToken).ConfigureAwait(false);
        if (top is null)
        {
            return (null, topError);
        }

        image.Top = top;
        if (!ManifestDocument.TryParse(top.Content, top.MediaType, out var document))
        {
            return (null, $"manifest {top.Digest} is not readable");
        }

        if (!document!.IsIndex)
        {
            return AddBlobs(image, document, null) ?? (image, null);
        }

        var children = platforms.Select(document.Manifests, out var absent);
        if (absent.Count > 0)
        {
            return (null, $"the image has no {string.Join(", ", absent)} manifest");
        }

        foreach (var child in children)
        {
            var (manifest, childError) = await FetchManifestAsync(reference.Registry, reference.Repository, child.Digest.Value, child.Digest, cancellationToken).ConfigureAwait(false);
            if (manifest is null)
            {
                return (null, $"{child.Platform}: {childError}");
            }

            if (!ManifestDocument.TryParse(manifest.Content, manifest.MediaType, out var childDocument) || childDocument!.IsIndex)
            {
                return (null, $"{child.Platform} manifest {child.Digest} is not an image manifest");
            }

            image.Children.Add(manifest);
            image.Platforms.Add(child.Platform?.ToString() ?? child.Digest.Value);
            if (AddBlobs(image, childDocument, child.Platform?.ToString()) is { } failed)
            {
                return failed;
            }
        }

        return (image, null);

        (ResolvedImage?, string?)? AddBlobs(ResolvedImage target, ManifestDocument manifest, string? platform)
        {
            foreach (var blob in manifest.Blobs)
            {
                if (blob.Digest.IsSha512 || blob.Size < 0)
                {
                    return (null, $"{blob.Digest}{(platform is null ? "" : $" ({platform})")}: only sha256 blobs with a known size go into a bundle");
                }

                target.Blobs.Add(new ResolvedBlob(blob.Digest, blob.Size, $"/v2/{reference.Repository}/blobs/{blob.Digest}?ns={Uri.EscapeDataString(reference.Registry)}"));
            }

            return null;
        }
    }

    private async Task<(ResolvedManifest? Manifest, string? Error)> FetchManifestAsync(string registry, string repository, string reference, Digest? expected, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v2/{repository}/manifests/{reference}?ns={Uri.EscapeDataString(registry)}");
        request.Headers.TryAddWithoutValidation("Accept", MediaTypes.ManifestAccept);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return (null, $"manifest {reference}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}".Trim());
        }

        if (response.Content.Headers.ContentLength > ManifestService.MaxManifestSize)
        {
            return (null, $"manifest {reference} is larger than {ManifestService.MaxManifestSize} bytes");
        }

        var content = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        var announced = response.Headers.TryGetValues("Docker-Content-Digest", out var values) && Digest.TryParse(values.FirstOrDefault(), out var header) ? header : (Digest?)null;
        var digest = expected ?? announced ?? Digest.ComputeSha256(content);
        if (digest.IsSha512 || !digest.Matches(content))
        {
            return (null, $"manifest {reference} does not hash to {digest}");
        }

        var mediaType = ManifestMediaType.Resolve(MediaTypes.StripParameters(response.Content.Headers.ContentType?.ToString()), content);
        return (new ResolvedManifest(digest, mediaType, content, repository, registry), null);
    }

    private async Task<Stream> OpenBlobAsync(ResolvedBlob blob, CancellationToken cancellationToken)
    {
        var response = await http.GetAsync(blob.Path, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var detail = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            response.Dispose();
            throw new HttpRequestException($"blob {blob.Digest} at {blob.Path.Split('?')[0]}: {(int)response.StatusCode} {detail}".Trim());
        }

        return new VerifyingStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), response, blob.Digest, blob.Size);
    }
}

/// <summary>Hashes what is read through it; at the end, throws unless the bytes are exactly the digest's, at the expected size.</summary>
internal sealed class VerifyingStream(Stream inner, IDisposable owner, Digest digest, long size) : ReadOnlyStream
{
    private readonly IncrementalHash _hash = digest.CreateHash();
    private long _read;
    private bool _verified;

    public override long Length => size;

    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer) => buffer.IsEmpty ? 0 : Account(buffer[..inner.Read(buffer)]);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Account(buffer.Span[..read]);
    }

    /// <summary>Hashes a chunk; at the end of the stream (an empty chunk), checks size and digest once.</summary>
    private int Account(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            if (_verified)
            {
                return 0;
            }

            _verified = true;
            if (_read != size || !digest.MatchesHash(_hash.GetHashAndReset()))
            {
                throw new InvalidDataException($"{digest} does not verify: the mirror sent {_read} bytes that do not hash to it (expected {size})");
            }

            return 0;
        }

        _hash.AppendData(data);
        _read += data.Length;
        if (_read > size)
        {
            throw new InvalidDataException($"{digest} runs past its {size} bytes");
        }

        return data.Length;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            inner.Dispose();
            owner.Dispose();
        }

        base.Dispose(disposing);
    }
}
