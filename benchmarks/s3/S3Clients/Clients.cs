namespace MirrorProxy.Benchmarks.S3;

/// <summary>The clients compiled into this build (all of them, or the one <c>-p:OnlyClient</c> names).</summary>
internal static class Clients
{
    public static IReadOnlyList<string> Available { get; } =
    [
#if CLIENT_OWN
        "own",
#endif
#if CLIENT_AWS
        "aws",
        "aws-chunked",
#endif
#if CLIENT_MINIO
        "minio",
#endif
    ];

    public static IBenchClient Create(string name, S3Target target) => name switch
    {
#if CLIENT_OWN
        "own" => new OwnClient(target),
#endif
#if CLIENT_AWS
        "aws" => new AwsClient(target, chunked: false),
        "aws-chunked" => new AwsClient(target, chunked: true),
#endif
#if CLIENT_MINIO
        "minio" => new MinioSdkClient(target),
#endif
        _ => throw new ArgumentException($"client '{name}' is not compiled into this build; available: {string.Join(", ", Available)}", nameof(name)),
    };
}
