namespace MirrorProxy.Protocol;

internal static class RegistryHeaders
{
    public const string ApiVersion = "Docker-Distribution-API-Version";
    public const string ApiVersionValue = "registry/2.0";
    public const string ContentDigest = "Docker-Content-Digest";
    public const string OciNamespace = "OCI-Namespace";
    public const string OciFiltersApplied = "OCI-Filters-Applied";
}
