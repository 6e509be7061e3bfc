namespace MirrorProxy.IntegrationTests.Support;

internal static class RepositoryRoot
{
    /// <summary>The directory holding MirrorProxy.sln, found upwards from the test assembly.</summary>
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "MirrorProxy.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("MirrorProxy.sln not found above " + AppContext.BaseDirectory);
    }
}
