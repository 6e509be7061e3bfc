using System.Text;
using BenchmarkDotNet.Attributes;
using MirrorProxy.Oci;

namespace MirrorProxy.Benchmarks.Oci;

/// <summary>Parsing done by check and warm-up per image, and by the mirror per manifest walked.</summary>
[MemoryDiagnoser]
public class ReferenceBenchmarks
{
    private readonly byte[] _index = Encoding.UTF8.GetBytes(
        """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[""" +
        string.Join(',', Enumerable.Range(0, 6).Select(i =>
            "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" + new string((char)('a' + i), 64)
            + "\",\"size\":1234,\"platform\":{\"architecture\":\"arch" + i + "\",\"os\":\"linux\"}}")) +
        "]}");

    [Benchmark]
    public bool NormaliseShortReference() => ImageReference.TryParse("nginx:1.27", out _, out _);

    [Benchmark]
    public bool NormaliseFullReference() => ImageReference.TryParse("registry.k8s.io/kube-apiserver:v1.31.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", out _, out _);

    [Benchmark]
    public int ParseIndex() => ManifestDocument.TryParse(_index, MediaTypes.OciIndex, out var document) ? document!.Manifests.Count : 0;

    [Benchmark]
    public string SniffMediaType() => ManifestMediaType.Resolve("application/json", _index);
}
