using System.CommandLine;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// deploy/offline-readiness-check.sh with the real <c>mirrorproxy</c> program against a real mirror (kubectl,
/// chronyc and getent are stubs): a cluster whose only uncached image is the mirror's own passes, and a
/// malformed mirror address is one clear line, not the help text.
/// </summary>
[Collection(PullThroughCollection.Name)]
public sealed class OfflineReadinessScriptTests(PullThroughFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("readiness-script");

    public void Dispose() => _work.Dispose();

    private string Busybox => $"docker.io/{fixture.DockerImage.Repository}:{fixture.DockerImage.Tag}";

    [Fact]
    public async Task ReadinessCheck_ClusterWithTheMirrorsOwnImage_PassesWithABareHostPort()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));
        var images = _work.Combine("images.txt");
        await File.WriteAllTextAsync(images, Busybox + "\n");
        var output = new StringWriter();
        Assert.Equal(0, await MirrorProxyCli.InvokeAsync(["warm", "--server", mirror.HostPort, "--images", images, "--platform", "all", "--no-pin"],
            new InvocationConfiguration { Output = output, Error = output }));

        var result = await RunScriptAsync(mirror.HostPort);

        Assert.True(result.ExitCode == 0, result.Describe());
        var lines = result.StandardOutput.Split('\n');
        Assert.Contains("PASS images: 2 images checked for all: 1 complete, 0 missing, 0 invalid, 1 not mirrored", lines);
        Assert.Contains(lines, l => l.StartsWith("    NOT MIRRORED: localhost/mirrorproxy:0.1.0: no upstream is configured for registry localhost", StringComparison.Ordinal));
        Assert.Contains("PASS overall: 4 of 4 checks passed", lines);
    }

    [Fact]
    public async Task ReadinessCheck_MalformedMirrorAddress_FailsWithOneLine()
    {
        var result = await RunScriptAsync("ftp://mirror.internal:5000");

        Assert.Equal(1, result.ExitCode);
        var images = Assert.Single(result.StandardOutput.Split('\n'), l => l.StartsWith("FAIL images: ", StringComparison.Ordinal));
        Assert.Equal("FAIL images: mirrorproxy check: --server: 'ftp://mirror.internal:5000' is not an http:// or https:// URL (nor HOST:PORT) " +
            "(see mirrorproxy check --help) (mirrorproxy check exited 2)", images);
        Assert.DoesNotContain("--help  ", result.StandardOutput, StringComparison.Ordinal);
    }

    private async Task<ProcessResult> RunScriptAsync(string mirrorUrl)
    {
        var stubs = _work.Combine("stubs");
        Directory.CreateDirectory(stubs);
        WriteExecutable(stubs, "mirrorproxy", $"#!/bin/sh\nexec dotnet '{Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll")}' \"$@\"\n");
        WriteExecutable(stubs, "kubectl", $$"""
            #!/bin/sh
            case "$1 $2" in
              "get pods") printf '%s' '{{Busybox}} localhost/mirrorproxy:0.1.0 {{Busybox}}' ;;
              "get certificates.cert-manager.io") printf 'mirrorproxy/mirrorproxy\tTrue\t2030-01-01T00:00:00Z\n' ;;
              *) echo "unexpected: $*" >&2; exit 3 ;;
            esac
            """);
        WriteExecutable(stubs, "chronyc", "#!/bin/sh\necho 'Reference ID    : C0A80001 (ntp.internal)'\necho 'Leap status     : Normal'\n");
        WriteExecutable(stubs, "getent", "#!/bin/sh\necho '10.43.0.50      mirror.internal'\n");
        return await ProcessRunner.RunAsync("bash", [Path.Combine(RepositoryRoot.Path, "deploy", "offline-readiness-check.sh")], TimeSpan.FromMinutes(2),
            new ProcessRunOptions
            {
                Environment = new Dictionary<string, string?>
                {
                    ["MIRROR_URL"] = mirrorUrl, ["MIRROR_CA"] = null, ["PLATFORMS"] = "all", ["DNS_NAMES"] = null,
                    ["KUBECTL"] = Path.Combine(stubs, "kubectl"), ["MIRRORPROXY"] = Path.Combine(stubs, "mirrorproxy"),
                    ["CHRONYC"] = Path.Combine(stubs, "chronyc"), ["GETENT"] = Path.Combine(stubs, "getent"),
                },
            }, CancellationToken.None);
    }

    private static void WriteExecutable(string directory, string name, string script)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, script.ReplaceLineEndings("\n"));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}
