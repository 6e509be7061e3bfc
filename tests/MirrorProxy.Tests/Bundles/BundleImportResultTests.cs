using System.Text.Json;
using MirrorProxy.Bundles;

namespace MirrorProxy.Tests.Bundles;

public sealed class BundleImportResultTests
{
    /// <summary>The import endpoint's answer names its outcome and refusal; the client reads them back as values.</summary>
    [Theory]
    [InlineData(nameof(BundleImportOutcome.Imported), null, "imported", null)]
    [InlineData(nameof(BundleImportOutcome.Busy), null, "busy", null)]
    [InlineData(nameof(BundleImportOutcome.Refused), nameof(BundleRefusal.StorageFailed), "refused", "StorageFailed")]
    [InlineData(nameof(BundleImportOutcome.Refused), nameof(BundleRefusal.BadSignature), "refused", "BadSignature")]
    public void Result_IsWrittenWithItsOutcomeAndRefusalByName_AndReadBack(string outcome, string? refusal, string outcomeName, string? refusalName)
    {
        var result = new BundleImportResult(Enum.Parse<BundleImportOutcome>(outcome), refusal is null ? null : Enum.Parse<BundleRefusal>(refusal), "message", null, null, 0, null, 0, 0, 0, 0, 0, 0, 0, 0, null);

        var json = JsonSerializer.Serialize(result, BundleApiJsonContext.Default.BundleImportResult);

        using var document = JsonDocument.Parse(json);
        Assert.Equal(outcomeName, document.RootElement.GetProperty("outcome").GetString());
        Assert.Equal(refusalName, document.RootElement.GetProperty("refusal").GetString());
        Assert.Equal(result, JsonSerializer.Deserialize(json, BundleApiJsonContext.Default.BundleImportResult));
    }
}
