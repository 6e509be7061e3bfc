using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace MirrorProxy.IntegrationTests.Deploy;

/// <summary>
/// A kustomization rendered by <c>kubectl kustomize</c> (kustomize v4 or later: the kubectl named by
/// <c>MIRRORPROXY_TEST_KUBECTL</c>, else the one on PATH; scripts/test.sh provides one), as JSON objects.
/// </summary>
internal sealed class RenderedManifests
{
    private RenderedManifests(IReadOnlyList<JsonObject> objects) => Objects = objects;

    public static string Kubectl => Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_KUBECTL") is { Length: > 0 } kubectl ? kubectl : "kubectl";

    public IReadOnlyList<JsonObject> Objects { get; }

    public static async Task<RenderedManifests> RenderAsync(string directory)
    {
        var result = await ProcessRunner.RunAsync(Kubectl, ["kustomize", directory], TimeSpan.FromMinutes(1), CancellationToken.None);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"{Kubectl} kustomize {directory} failed (kustomize v4 or later is needed; scripts/test.sh installs one):\n{result.Describe()}");
        }

        return Parse(result.StandardOutput);
    }

    /// <summary>
    /// Renders a kustomization under deploy/ from a copy of deploy/ in which <paramref name="operatorFiles"/> (paths
    /// relative to the kustomization: the files its secretGenerator takes from the operator) are written, and in
    /// which every other file the operator would provide is absent, whatever the working tree holds.
    /// </summary>
    public static async Task<RenderedManifests> RenderAsync(string directory, IReadOnlyDictionary<string, string> operatorFiles)
    {
        var deploy = Path.Combine(RepositoryRoot.Path, "deploy");
        var relative = Path.GetRelativePath(deploy, directory);
        if (relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative))
        {
            throw new ArgumentException($"{directory} is not under {deploy}", nameof(directory));
        }

        using var copy = new TempDirectory("mirrorproxy-deploy-copy");
        CopyDirectory(deploy, copy.Path);
        var target = Path.Combine(copy.Path, relative);
        foreach (var provided in OperatorFiles(target))
        {
            File.Delete(Path.Combine(target, provided));
        }

        foreach (var (path, content) in operatorFiles)
        {
            await File.WriteAllTextAsync(Path.Combine(target, path), content);
        }

        return await RenderAsync(target);
    }

    /// <summary>
    /// The files a kustomization's secretGenerator reads that the repository does not hold (git-ignored: the
    /// operator writes them before applying), as paths relative to the kustomization.
    /// </summary>
    public static IReadOnlyList<string> OperatorFiles(string directory)
    {
        var kustomization = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object?>>(File.ReadAllText(Path.Combine(directory, "kustomization.yaml")));
        if (!kustomization.TryGetValue("secretGenerator", out var generators) || generators is not IList<object> list)
        {
            return [];
        }

        var gitignore = Path.Combine(directory, ".gitignore");
        var ignored = File.Exists(gitignore)
            ? File.ReadAllLines(gitignore).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
        return list.OfType<IDictionary<object, object>>()
            .SelectMany(g => g.TryGetValue("files", out var files) && files is IList<object> entries ? entries.Select(e => e.ToString()!) : [])
            .Select(entry => entry.Contains('=', StringComparison.Ordinal) ? entry[(entry.IndexOf('=', StringComparison.Ordinal) + 1)..] : entry)
            .Where(ignored.Contains)
            .ToList();
    }

    private static void CopyDirectory(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }

        foreach (var directory in Directory.EnumerateDirectories(source))
        {
            CopyDirectory(directory, Path.Combine(destination, Path.GetFileName(directory)));
        }
    }

    public static RenderedManifests Parse(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new YamlDotNet.Core.Parser(new StringReader(yaml));
        parser.Consume<YamlDotNet.Core.Events.StreamStart>();
        var objects = new List<JsonObject>();
        while (parser.Accept<YamlDotNet.Core.Events.DocumentStart>(out _))
        {
            if (ToJson(deserializer.Deserialize<object?>(parser)) is JsonObject document)
            {
                objects.Add(document);
            }
        }

        return new RenderedManifests(objects);
    }

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => (string?)o["kind"] == kind);

    public JsonObject? Find(string kind, string name) => OfKind(kind).FirstOrDefault(o => (string?)o["metadata"]?["name"] == name);

    /// <summary>YAML scalars stay strings (<c>"5000"</c>): readers parse numbers where they need them.</summary>
    private static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IDictionary<object, object> map => new JsonObject(map.Select(p => KeyValuePair.Create(p.Key.ToString()!, ToJson(p.Value)))),
        IList<object> list => new JsonArray(list.Select(ToJson).ToArray()),
        _ => JsonValue.Create(value.ToString()),
    };
}
