using System.Text.Json.Nodes;
using MirrorProxy.IntegrationTests.Infrastructure;
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
