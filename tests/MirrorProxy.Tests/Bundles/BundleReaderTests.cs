using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.Bundles;

namespace MirrorProxy.Tests.Bundles;

public sealed class BundleReaderTests
{
    private static readonly byte[] Layout = BundleLayout.OciLayoutContent;
    private static readonly byte[] Index = """{"schemaVersion":2,"manifests":[]}"""u8.ToArray();

    private sealed class RecordingSink : IBundleSink
    {
        public List<string> Completed { get; } = [];

        public ValueTask<string?> AcceptAsync(BundleManifest manifest, CancellationToken cancellationToken) => ValueTask.FromResult<string?>(null);

        public ValueTask<Stream?> OpenAsync(BundleFile file, CancellationToken cancellationToken) => ValueTask.FromResult<Stream?>(new MemoryStream());

        public ValueTask CompleteAsync(BundleFile file, Stream? destination, CancellationToken cancellationToken)
        {
            Completed.Add(file.Path);
            return ValueTask.CompletedTask;
        }
    }

    private static byte[] ManifestBytes() => JsonSerializer.SerializeToUtf8Bytes(new BundleManifest(
        BundleManifest.CurrentFormatVersion, BundleManifest.FullKind, "0123456789abcdef0123456789abcdef", DateTimeOffset.UnixEpoch, 1, null, [],
        [new BundleFile("oci-layout", Layout.Length, Convert.ToHexStringLower(SHA256.HashData(Layout))),
         new BundleFile("index.json", Index.Length, Convert.ToHexStringLower(SHA256.HashData(Index)))]), BundleJsonContext.Default.BundleManifest);

    private static MemoryStream Tar(params (string Name, byte[]? Content, TarEntryType Type)[] entries)
    {
        var stream = new MemoryStream();
        using (var writer = new TarWriter(stream, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, content, type) in entries)
            {
                var entry = new PaxTarEntry(type, name);
                if (content is not null)
                {
                    entry.DataStream = new MemoryStream(content);
                }

                writer.WriteEntry(entry);
            }
        }

        stream.Position = 0;
        return stream;
    }

    [Fact]
    public async Task ASoundBundle_IsReadWithDirectoryEntriesAndDotSlashNames()
    {
        var (privatePem, publicPem) = BundleSigning.GenerateKeyPair();
        using var key = BundleSigning.LoadPrivateKey(privatePem, out _)!;
        using var trusted = BundleSigning.LoadPublicKey(publicPem, out _)!;
        var manifest = ManifestBytes();
        var sink = new RecordingSink();

        var result = await BundleReader.ReadAsync(Tar(
            ("./mirrorproxy-bundle.json", manifest, TarEntryType.RegularFile),
            ("./mirrorproxy-bundle.json.sig", BundleSigning.Sign(key, manifest), TarEntryType.RegularFile),
            ("./blobs/", null, TarEntryType.Directory),
            ("./oci-layout", Layout, TarEntryType.RegularFile),
            ("index.json", Index, TarEntryType.RegularFile)), new BundleTrust([trusted], false), sink, null, CancellationToken.None);

        Assert.True(result.Accepted, result.Message);
        Assert.Equal(trusted.Id, result.SignedBy);
        Assert.Equal(["oci-layout", "index.json"], sink.Completed);
    }

    [Fact]
    public async Task TheSignatureIsCheckedBeforeTheManifestIsParsed()
    {
        var (_, publicPem) = BundleSigning.GenerateKeyPair();
        var (otherPrivate, _) = BundleSigning.GenerateKeyPair();
        using var other = BundleSigning.LoadPrivateKey(otherPrivate, out _)!;
        using var trusted = BundleSigning.LoadPublicKey(publicPem, out _)!;
        var garbage = Encoding.UTF8.GetBytes("{ this is not json");

        var result = await BundleReader.ReadAsync(Tar(
            ("mirrorproxy-bundle.json", garbage, TarEntryType.RegularFile),
            ("mirrorproxy-bundle.json.sig", BundleSigning.Sign(other, garbage), TarEntryType.RegularFile)), new BundleTrust([trusted], false), new RecordingSink(), null, CancellationToken.None);

        Assert.Equal(BundleRefusal.BadSignature, result.Refusal);
        Assert.Null(result.Manifest);
    }

    [Fact]
    public async Task AnArchiveThatDoesNotBeginWithTheManifest_IsNotABundle()
    {
        var result = await BundleReader.ReadAsync(Tar(("oci-layout", Layout, TarEntryType.RegularFile)), new BundleTrust([], true), new RecordingSink(), null, CancellationToken.None);

        Assert.Equal(BundleRefusal.NotABundle, result.Refusal);
        Assert.Contains("must begin with mirrorproxy-bundle.json", result.Message, StringComparison.Ordinal);
    }

    /// <summary>Keeps what is written and hashes it as it is written, as the cache's writer does.</summary>
    private sealed class HashingDestination : MemoryStream, IHashingDestination
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public bool HashesSha256 => true;

        public int Writes { get; private set; }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _hash.AppendData(buffer);
            Writes++;
            base.Write(buffer);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public void GetSha256(Span<byte> hash) => _hash.GetCurrentHash(hash);
    }

    private sealed class HashingSink : IBundleSink
    {
        public List<string> Completed { get; } = [];

        public List<HashingDestination> Destinations { get; } = [];

        public ValueTask<string?> AcceptAsync(BundleManifest manifest, CancellationToken cancellationToken) => ValueTask.FromResult<string?>(null);

        public ValueTask<Stream?> OpenAsync(BundleFile file, CancellationToken cancellationToken)
        {
            var destination = new HashingDestination();
            Destinations.Add(destination);
            return ValueTask.FromResult<Stream?>(destination);
        }

        public ValueTask CompleteAsync(BundleFile file, Stream? destination, CancellationToken cancellationToken)
        {
            Completed.Add(file.Path);
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task ADestinationThatHashes_ItsHashDecides_AndAnAlteredFileIsRefusedBeforeItCompletes()
    {
        var (privatePem, publicPem) = BundleSigning.GenerateKeyPair();
        using var key = BundleSigning.LoadPrivateKey(privatePem, out _)!;
        using var trusted = BundleSigning.LoadPublicKey(publicPem, out _)!;
        var manifest = ManifestBytes();
        var altered = (byte[])Index.Clone();
        altered[^2] ^= 1;

        var sound = new HashingSink();
        var accepted = await BundleReader.ReadAsync(Tar(
            ("mirrorproxy-bundle.json", manifest, TarEntryType.RegularFile),
            ("mirrorproxy-bundle.json.sig", BundleSigning.Sign(key, manifest), TarEntryType.RegularFile),
            ("oci-layout", Layout, TarEntryType.RegularFile),
            ("index.json", Index, TarEntryType.RegularFile)), new BundleTrust([trusted], false), sound, null, CancellationToken.None);
        Assert.True(accepted.Accepted, accepted.Message);
        Assert.Equal(["oci-layout", "index.json"], sound.Completed);
        Assert.Equal(Index, sound.Destinations[1].ToArray());

        var tampered = new HashingSink();
        var refused = await BundleReader.ReadAsync(Tar(
            ("mirrorproxy-bundle.json", manifest, TarEntryType.RegularFile),
            ("mirrorproxy-bundle.json.sig", BundleSigning.Sign(key, manifest), TarEntryType.RegularFile),
            ("oci-layout", Layout, TarEntryType.RegularFile),
            ("index.json", altered, TarEntryType.RegularFile)), new BundleTrust([trusted], false), tampered, null, CancellationToken.None);
        Assert.Equal(BundleRefusal.FileMismatch, refused.Refusal);
        Assert.Contains("index.json does not hash to its signed sha256", refused.Message, StringComparison.Ordinal);
        Assert.Equal(["oci-layout"], tampered.Completed);
        Assert.True(tampered.Destinations[1].Writes > 0);
    }
}
