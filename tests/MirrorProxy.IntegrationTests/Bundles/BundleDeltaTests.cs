using System.Text.Json;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>Deltas cut against an island's inventory, and the island-side rules that keep them safe.</summary>
[Collection(BundleCollection.Name)]
public sealed class BundleDeltaTests(BundleFixture fixture, Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private readonly TempDirectory _work = new("bundle-delta");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task Delta_CarriesNoBlobTheIslandHas_CompletesTheIsland_AndIsRefusedWhereItDoesNotBelong()
    {
        var server = fixture.Connected.BaseUri.ToString();
        var appOnly = _work.Combine("app.txt");
        await File.WriteAllTextAsync(appOnly, fixture.MultiArchReference + "\n");
        var first = _work.Combine("first.tar");
        var (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", server, "--images", appOnly, "--platform", "all", "--sign-key", fixture.SigningKey, "--output", first);
        Assert.True(exit == 0, output);

        await using var island = await BundleFixture.StartIslandAsync(_work.Combine("island"));
        var islandUrl = island.BaseUri.ToString();
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", islandUrl, "--trust", fixture.SigningPublicKey, first);
        Assert.True(exit == 0, output);

        var inventory = _work.Combine("island.json");
        (exit, output) = await BundleFixture.CliAsync("bundle", "inventory", "--server", islandUrl, "--output", inventory);
        Assert.True(exit == 0, output);
        var held = JsonDocument.Parse(await File.ReadAllBytesAsync(inventory)).RootElement.GetProperty("digests").EnumerateArray().Select(d => d.GetString()!).ToHashSet();
        Assert.All(fixture.MultiArch.Blobs, b => Assert.Contains(b.Digest, held));
        Assert.Contains($"{held.Count} objects", output, StringComparison.Ordinal);

        // Both images, cut against what the island holds: the app's blobs stay out, every manifest goes in.
        var delta = _work.Combine("delta");
        (exit, output) = await BundleFixture.CliAsync("bundle", "export", "--server", server, "--images", fixture.Images, "--platform", "all",
            "--inventory", inventory, "--sign-key", fixture.SigningKey, "--output", delta);
        Assert.True(exit == 0, output);
        Assert.Contains($"left out {fixture.MultiArch.Blobs.Count} blobs", output, StringComparison.Ordinal);
        var carried = Directory.EnumerateFiles(Path.Combine(delta, "blobs", "sha256")).Select(f => "sha256:" + Path.GetFileName(f)).ToHashSet();
        Assert.All(fixture.MultiArch.Blobs, b => Assert.DoesNotContain(b.Digest, carried));
        Assert.DoesNotContain(carried, d => held.Contains(d) && !fixture.MultiArch.Manifests.Any(m => m.Digest == d) && d != fixture.MultiArch.Digest);
        Assert.All(fixture.Docker.Blobs, b => Assert.Contains(b.Digest, carried));
        Assert.Contains(fixture.MultiArch.Digest, carried);
        Assert.All(fixture.MultiArch.ChildManifests, m => Assert.Contains(m.Digest, carried));
        log.WriteLine($"delta of both images against an island holding the first: {Directory.EnumerateFiles(delta, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length)} bytes; " +
            $"the full bundle of the first: {new FileInfo(first).Length} bytes (tar); inventory {new FileInfo(inventory).Length} bytes for {held.Count} objects");
        var manifest = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(delta, "mirrorproxy-bundle.json"))).RootElement;
        Assert.Equal("delta", manifest.GetProperty("kind").GetString());
        Assert.Equal(fixture.MultiArch.Blobs.Count, manifest.GetProperty("base").GetProperty("omitted").GetInt64());

        // Another island did not hold what the delta leaves out: refused before anything is staged.
        var stranger = _work.Combine("stranger");
        await using (var other = await BundleFixture.StartIslandAsync(stranger))
        {
            (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", other.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, delta);
            Assert.Equal(1, exit);
            Assert.Contains("this delta was cut against the inventory of mirror", output, StringComparison.Ordinal);
        }

        BundleRefusalTests.AssertNothingImported(stranger);

        // The island lost a blob it had when the inventory was taken: refused, naming it, nothing imported.
        var lost = fixture.MultiArch.ChildManifests[0].Layers[2].Digest;
        var lostPath = Path.Combine(island.CacheDirectory, "blobs", "sha256", lost[7..9], lost[7..]);
        var lostBytes = await File.ReadAllBytesAsync(lostPath);
        File.Delete(lostPath);
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", islandUrl, "--trust", fixture.SigningPublicKey, delta);
        Assert.Equal(1, exit);
        Assert.Contains("neither in the bundle nor in this mirror's cache", output, StringComparison.Ordinal);
        Assert.Contains(lost, output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(island.CacheDirectory, "tmp")));
        Assert.All(fixture.Docker.Blobs, b => Assert.False(File.Exists(Path.Combine(island.CacheDirectory, "blobs", "sha256", b.Digest[7..9], b.Digest[7..]))));

        await File.WriteAllBytesAsync(lostPath, lostBytes);
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", islandUrl, "--trust", fixture.SigningPublicKey, delta);
        Assert.True(exit == 0, output);
        Assert.Contains("imported delta bundle", output, StringComparison.Ordinal);

        (exit, output) = await BundleFixture.CliAsync("check", "--server", islandUrl, "--images", fixture.Images, "--platform", "all");
        Assert.True(exit == 0, output);

        // The first bundle is older than the delta now imported: taking it again could move tags back.
        (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", islandUrl, "--trust", fixture.SigningPublicKey, first);
        Assert.Equal(1, exit);
        Assert.Contains("is older than bundle", output, StringComparison.Ordinal);
    }
}
