using Microsoft.Extensions.Options;

namespace MirrorProxy.Admin;

/// <summary>The operator endpoints under <c>/admin</c>. Section <c>MirrorProxy:Admin</c>.</summary>
public sealed class AdminOptions
{
    public const string SectionName = "MirrorProxy:Admin";

    /// <summary>Whether <c>/admin/*</c> answers every host. Off by default: loopback, or a client with the token.</summary>
    public bool AllowRemote { get; set; }

    /// <summary>A bearer token that lets remote clients (the warm-up job) use <c>/admin/*</c>.</summary>
    public string? Token { get; set; }

    /// <summary>A file holding the token (a mounted Secret); read at start.</summary>
    public string? TokenFile { get; set; }
}

/// <summary>Checks <see cref="AdminOptions"/> at start; every failure names its key.</summary>
internal sealed class AdminOptionsValidator : IValidateOptions<AdminOptions>
{
    private const string Key = AdminOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, AdminOptions options)
    {
        var failures = new List<string>();
        if (options.Token is not null && options.TokenFile is not null)
        {
            failures.Add($"{Key}: set Token or TokenFile, not both");
        }

        if (options.TokenFile is { } tokenFile && !File.Exists(tokenFile))
        {
            failures.Add($"{Key}:TokenFile: '{tokenFile}' does not exist");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
