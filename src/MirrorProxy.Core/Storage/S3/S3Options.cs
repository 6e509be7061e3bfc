using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;

namespace MirrorProxy.Storage.S3;

/// <summary>
/// The shared blob store of replicas: an S3-compatible bucket (Ceph RGW, MinIO, Garage, AWS S3, …). Section
/// <c>MirrorProxy:Storage:S3</c>; the mirror uses it when <see cref="Endpoint"/> is set. Content lives in the bucket,
/// keyed by digest; the local cache directory becomes a read cache of it, bounded by <c>Cache:MaxSize</c>.
/// </summary>
public sealed class S3Options
{
    public const string SectionName = "MirrorProxy:Storage:S3";

    /// <summary>The S3 endpoint, e.g. <c>http://rgw.storage:7480</c> or <c>https://s3.eu-west-1.amazonaws.com</c>.</summary>
    public string? Endpoint { get; set; }

    public string? Bucket { get; set; }

    /// <summary>The region requests are signed for; most S3-compatible stores accept any.</summary>
    public string Region { get; set; } = "us-east-1";

    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    /// <summary>A file holding the secret key (a mounted Secret), instead of <see cref="SecretKey"/>.</summary>
    public string? SecretKeyFile { get; set; }

    /// <summary>Path-style addressing (<c>endpoint/bucket/key</c>), which S3-compatible stores expect; false for virtual-hosted style (<c>bucket.endpoint/key</c>).</summary>
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>Key prefix for everything the mirror keeps in the bucket (so several mirrors can share one bucket).</summary>
    public string Prefix { get; set; } = "";

    /// <summary>Budget for content in the bucket; the replica holding the leader lease evicts unpinned content, least recently used first. None: the bucket grows.</summary>
    public ByteSize? MaxSize { get; set; }

    /// <summary>How often the leader checks the bucket against <see cref="MaxSize"/> (one listing of the bucket each time).</summary>
    public TimeSpan EvictionInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Time to answer headers for one request, and longest silence while a body streams.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>While the store is unreachable, requests fail at once for this long before one is tried again.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Connections kept to the store.</summary>
    public int MaxConnections { get; set; } = 32;

    public bool IsEnabled => !string.IsNullOrWhiteSpace(Endpoint);

    /// <summary>The prefix as keys use it: empty, or ending with one slash.</summary>
    internal string KeyPrefix => Prefix.Length == 0 || Prefix.EndsWith('/') ? Prefix : Prefix + "/";
}

/// <summary>Checks <see cref="S3Options"/> at start when the store is configured; every failure names its key.</summary>
internal sealed partial class S3OptionsValidator : IValidateOptions<S3Options>
{
    private const string Key = S3Options.SectionName;

    public ValidateOptionsResult Validate(string? name, S3Options options)
    {
        if (!options.IsEnabled)
        {
            return ValidateOptionsResult.Success;
        }

        var failures = new List<string>();
        if (!Uri.TryCreate(options.Endpoint, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https")
            || endpoint.Query.Length > 0 || endpoint.AbsolutePath != "/" || endpoint.UserInfo.Length > 0)
        {
            failures.Add($"{Key}:Endpoint: an http:// or https:// URL with no path, query or credentials is required, got '{options.Endpoint}'");
        }

        if (options.Bucket is null || !BucketName().IsMatch(options.Bucket) || options.Bucket.Contains("..", StringComparison.Ordinal))
        {
            failures.Add($"{Key}:Bucket: 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit, got '{options.Bucket}'");
        }

        if (string.IsNullOrWhiteSpace(options.Region))
        {
            failures.Add($"{Key}:Region: required (us-east-1 suits most S3-compatible stores)");
        }

        if (string.IsNullOrWhiteSpace(options.AccessKey))
        {
            failures.Add($"{Key}:AccessKey: required");
        }

        var secretGiven = !string.IsNullOrEmpty(options.SecretKey);
        var fileGiven = !string.IsNullOrEmpty(options.SecretKeyFile);
        if (secretGiven == fileGiven)
        {
            failures.Add($"{Key}:SecretKey, {Key}:SecretKeyFile: give exactly one (the file form suits a mounted Secret)");
        }
        else if (fileGiven && S3Credentials.TryReadSecretFile(options.SecretKeyFile!, out _) is { } fileError)
        {
            failures.Add($"{Key}:SecretKeyFile: {fileError}");
        }

        if (options.Prefix.StartsWith('/') || options.Prefix.Contains("//", StringComparison.Ordinal) || options.Prefix.Any(char.IsControl))
        {
            failures.Add($"{Key}:Prefix: a relative key prefix such as 'mirror/' is expected, got '{options.Prefix}'");
        }

        if (options.MaxSize is { Bytes: <= 0 })
        {
            failures.Add($"{Key}:MaxSize: must be positive, got {options.MaxSize}");
        }

        foreach (var (value, key) in new[]
                 {
                     (options.RequestTimeout, "RequestTimeout"), (options.ConnectTimeout, "ConnectTimeout"), (options.BreakDuration, "BreakDuration"),
                     (options.EvictionInterval, "EvictionInterval"),
                 })
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"{Key}:{key}: must be positive, got {value}");
            }
        }

        if (options.MaxConnections is < 1 or > 1024)
        {
            failures.Add($"{Key}:MaxConnections: between 1 and 1024, got {options.MaxConnections}");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();
}

/// <summary>The access key and secret of the store.</summary>
internal sealed record S3Credentials(string AccessKey, string SecretKey)
{
    public static S3Credentials From(S3Options options)
    {
        var secret = options.SecretKey;
        if (string.IsNullOrEmpty(secret) && TryReadSecretFile(options.SecretKeyFile!, out secret) is { } error)
        {
            throw new InvalidOperationException($"{S3Options.SectionName}:SecretKeyFile: {error}");
        }

        return new S3Credentials(options.AccessKey!.Trim(), secret!);
    }

    /// <summary>Reads the secret from its file (trimmed); the reason when it cannot.</summary>
    public static string? TryReadSecretFile(string path, out string? secret)
    {
        secret = null;
        try
        {
            secret = File.ReadAllText(path).Trim();
            return secret.Length == 0 ? $"'{path}' is empty" : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot read '{path}': {ex.Message}";
        }
    }

    public override string ToString() => $"S3Credentials {{ AccessKey = {AccessKey}, SecretKey = *** }}";
}
