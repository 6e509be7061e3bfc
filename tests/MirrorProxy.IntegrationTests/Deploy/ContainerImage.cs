using System.Text.Json;
using System.Text.RegularExpressions;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// The mirror's container image as the repository's Dockerfile defines it, read from the Dockerfile's last stage:
/// the files it copies in (the published program), ENV, USER, WORKDIR and ENTRYPOINT. Its base
/// (runtime-deps, chiseled) adds C libraries and nothing runnable: no shell, no coreutils.
/// </summary>
internal sealed partial class ContainerImage
{
    private ContainerImage(IReadOnlyDictionary<string, string> files, IReadOnlyList<string> entrypoint, IReadOnlyDictionary<string, string> environment, string? user, string workingDirectory)
    {
        Files = files;
        Entrypoint = entrypoint;
        Environment = environment;
        User = user;
        WorkingDirectory = workingDirectory;
    }

    /// <summary>Executable files in the image, by their path in the image, to the local file that stands for them.</summary>
    public IReadOnlyDictionary<string, string> Files { get; }

    public IReadOnlyList<string> Entrypoint { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    public string? User { get; }

    public string WorkingDirectory { get; }

    /// <param name="dockerfile">The Dockerfile.</param>
    /// <param name="buildOutputs">Build-stage paths (<c>/out/mirrorproxy</c>) to the local files built the same way.</param>
    public static ContainerImage FromDockerfile(string dockerfile, IReadOnlyDictionary<string, string> buildOutputs)
    {
        var lines = JoinContinuations(File.ReadAllLines(dockerfile)).ToList();
        var lastFrom = lines.FindLastIndex(l => l.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase));
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        IReadOnlyList<string> entrypoint = [];
        string? user = null;
        var workingDirectory = "/";
        foreach (var line in lines.Skip(lastFrom + 1))
        {
            var (instruction, rest) = Split(line);
            switch (instruction)
            {
                case "COPY":
                    var words = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
                    var destination = words[^1];
                    foreach (var source in words[..^1])
                    {
                        if (buildOutputs.TryGetValue(source, out var local))
                        {
                            files[destination.EndsWith('/') ? destination + Path.GetFileName(source) : destination] = local;
                        }
                    }

                    break;
                case "ENV":
                    var equals = rest.IndexOf('=');
                    environment[rest[..equals].Trim()] = rest[(equals + 1)..].Trim().Trim('"');
                    break;
                case "USER":
                    user = rest.Trim();
                    break;
                case "WORKDIR":
                    workingDirectory = rest.Trim();
                    break;
                case "ENTRYPOINT":
                    entrypoint = JsonSerializer.Deserialize<string[]>(rest) ?? throw new InvalidDataException("ENTRYPOINT must be in exec form: " + line);
                    break;
            }
        }

        if (files.Count == 0 || entrypoint.Count == 0)
        {
            throw new InvalidDataException($"{dockerfile}: the last stage copies no build output or has no ENTRYPOINT");
        }

        return new ContainerImage(files, entrypoint, environment, user, workingDirectory);
    }

    private static (string Instruction, string Remainder) Split(string line)
    {
        var match = InstructionPattern().Match(line);
        return match.Success ? (match.Groups[1].Value.ToUpperInvariant(), match.Groups[2].Value) : ("", line);
    }

    private static IEnumerable<string> JoinContinuations(IEnumerable<string> lines)
    {
        var current = "";
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd();
            if (current.Length == 0 && (line.TrimStart().StartsWith('#') || line.Length == 0))
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                current += line[..^1] + " ";
                continue;
            }

            yield return (current + line).Trim();
            current = "";
        }
    }

    [GeneratedRegex(@"^([A-Za-z]+)\s+(.*)$")]
    private static partial Regex InstructionPattern();
}
