using MirrorProxy.Hosting;
using MirrorProxy.Storage.S3;

namespace MirrorProxy.Tests.Storage;

public sealed class S3OptionsTests
{
    private static S3Options Valid() => new() { Endpoint = "http://rgw.local:7480", Bucket = "mirror-cache", AccessKey = "AK", SecretKey = "SK" };

    [Fact]
    public void Validate_WithoutAnEndpoint_IsOff_AndValid() => Assert.True(new S3OptionsValidator().Validate(null, new S3Options()).Succeeded);

    [Fact]
    public void Validate_AComplete_Configuration_Succeeds() => Assert.True(new S3OptionsValidator().Validate(null, Valid()).Succeeded);

    [Theory]
    [InlineData("Endpoint", "ftp://rgw.local")]
    [InlineData("Endpoint", "http://rgw.local/some/path")]
    [InlineData("Endpoint", "http://user:pw@rgw.local")]
    [InlineData("Bucket", "Upper_Case")]
    [InlineData("Bucket", "ab")]
    [InlineData("Bucket", "a..b")]
    [InlineData("Prefix", "/leading")]
    public void Validate_ABadValue_NamesItsKey(string key, string value)
    {
        var options = Valid();
        typeof(S3Options).GetProperty(key)!.SetValue(options, value);

        var result = new S3OptionsValidator().Validate(null, options);

        Assert.False(result.Succeeded);
        Assert.Contains(result.Failures!, f => f.StartsWith($"MirrorProxy:Storage:S3:{key}", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_BothSecretForms_OrNeither_IsRefused()
    {
        var both = Valid();
        both.SecretKeyFile = "/run/secrets/s3";
        var neither = Valid();
        neither.SecretKey = null;

        Assert.Contains(new S3OptionsValidator().Validate(null, both).Failures!, f => f.Contains("give exactly one", StringComparison.Ordinal));
        Assert.Contains(new S3OptionsValidator().Validate(null, neither).Failures!, f => f.Contains("give exactly one", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ASecretFileThatCannotBeRead_SaysWhich()
    {
        var options = Valid();
        options.SecretKey = null;
        options.SecretKeyFile = "/nonexistent/s3-secret";

        var failure = Assert.Single(new S3OptionsValidator().Validate(null, options).Failures!);

        Assert.StartsWith("MirrorProxy:Storage:S3:SecretKeyFile: cannot read '/nonexistent/s3-secret'", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Credentials_FromAFile_AreTrimmed_AndNeverPrinted()
    {
        using var directory = new Support.TempDirectory();
        var file = directory.Combine("secret");
        File.WriteAllText(file, "  s3cr3t\n");
        var options = Valid();
        options.SecretKey = null;
        options.SecretKeyFile = file;

        var credentials = S3Credentials.From(options);

        Assert.Equal("s3cr3t", credentials.SecretKey);
        Assert.DoesNotContain("s3cr3t", credentials.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void KeyPrefix_EndsWithOneSlash() =>
        Assert.Equal(("", "m/", "m/"), (new S3Options().KeyPrefix, new S3Options { Prefix = "m" }.KeyPrefix, new S3Options { Prefix = "m/" }.KeyPrefix));

    [Fact]
    public void MaxSize_Zero_IsRefused()
    {
        var options = Valid();
        options.MaxSize = new ByteSize(0);

        Assert.Contains(new S3OptionsValidator().Validate(null, options).Failures!, f => f.StartsWith("MirrorProxy:Storage:S3:MaxSize", StringComparison.Ordinal));
    }
}
