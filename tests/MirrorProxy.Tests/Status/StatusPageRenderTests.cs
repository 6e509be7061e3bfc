using MirrorProxy.Status;

namespace MirrorProxy.Tests.Status;

public sealed class StatusPageRenderTests
{
    private const string Evil = "<script>alert(\"x\")</script>&'";

    private static StatusSnapshot Snapshot(bool canSail, IReadOnlyList<PullFailure>? failures = null) => new(
        new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero),
        new SailVerdict(canSail, canSail ? [] : [$"Pin set {Evil} lacks 1 of 2 objects"]),
        Offline: true,
        [new UpstreamStatus(Evil, "https://" + Evil, Evil)],
        new CacheStatus(UsedBytes: 3L << 30, Objects: 12, BudgetBytes: 4L << 30, FreeDiskBytes: 5L << 30, MinFreeDiskBytes: 1L << 30, Writable: true),
        [new PinSetStatus(Evil, 1, 2, 1, Evil, DateTimeOffset.UnixEpoch, [new IncompleteImage(Evil, Evil)], MoreIncomplete: true)],
        failures ?? [new PullFailure(DateTimeOffset.UnixEpoch, Evil, Evil, Evil, 503, Evil)],
        FailuresSinceStart: 1,
        new WarmUpStatus(DateTimeOffset.UnixEpoch, Evil, Complete: false));

    [Fact]
    public void Render_TextFromClientsAndConfiguration_IsEscapedEverywhere()
    {
        var html = StatusPage.Render(Snapshot(canSail: false));

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("alert(\"", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
        // Every place a name appears: verdict, upstream row (text and attributes), pin set, incomplete image, failure, warm-up.
        Assert.True(System.Text.RegularExpressions.Regex.Count(html, "&lt;script&gt;") >= 10);
    }

    [Fact]
    public void Render_IsOnePageWithNothingToFetch_AndRefreshesItself()
    {
        var html = StatusPage.Render(Snapshot(canSail: true, failures: []));

        Assert.StartsWith("<!doctype html>", html, StringComparison.Ordinal);
        Assert.Contains($"<meta http-equiv=\"refresh\" content=\"{StatusPage.RefreshSeconds}\">", html, StringComparison.Ordinal);
        Assert.Contains("name=\"viewport\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("src=", html, StringComparison.Ordinal);
        Assert.DoesNotContain("href=", html, StringComparison.Ordinal);
        Assert.DoesNotContain("url(", html, StringComparison.Ordinal);
        Assert.Contains("Ready to sail", html, StringComparison.Ordinal);
        Assert.Contains("None since the mirror started.", html, StringComparison.Ordinal);
        Assert.Contains("3.0 GiB", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1536, "1.5 KiB")]
    [InlineData(20L << 30, "20 GiB")]
    public void Bytes_AreWrittenInBinaryUnits(long bytes, string expected) => Assert.Equal(expected, StatusPage.Bytes(bytes));
}
