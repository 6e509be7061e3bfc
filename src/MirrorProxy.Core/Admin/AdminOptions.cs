using Microsoft.Extensions.Options;

namespace MirrorProxy.Admin;

/// <summary>The operator endpoints under <c>/admin</c>. Section <c>MirrorProxy:Admin</c>.</summary>
public sealed class AdminOptions
{
    public const string SectionName = "MirrorProxy:Admin";

    /// <summary>
    /// Whether remote clients may use <c>/admin/*</c> at all (with the token). Loopback callers need nothing; every
    /// other caller needs the token, so setting this without a token refuses to start.
    /// </summary>
    public bool AllowRemote { get; set; }

    /// <summary>A bearer token that lets remote clients (the warm-up job) use <c>/admin/*</c>.</summary>
    public string? Token { get; set; }

    /// <summary>A listener of their own for the admin endpoints (<c>HOST:PORT</c>), kept out of the Service nodes use; then the main listener does not answer /admin.</summary>
    public string? Listen { get; set; }

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

        if (options.AllowRemote && string.IsNullOrEmpty(options.Token) && options.TokenFile is null)
        {
            failures.Add($"{Key}:AllowRemote: remote admin calls need a token: set {Key}:Token or {Key}:TokenFile");
        }

        if (options.Listen is { } listen && !Hosting.ListenAddress.TryParse(listen, out _, out var listenError))
        {
            failures.Add($"{Key}:Listen: {listenError}");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
