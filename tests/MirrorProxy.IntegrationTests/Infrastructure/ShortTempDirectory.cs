namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>A uniquely named directory that is deleted (best effort) on dispose.</summary>
internal sealed class ShortTempDirectory : IDisposable
{
    private ShortTempDirectory(string path)
    {
        Path = path;
    }

    public string Path { get; }

    /// <summary>Creates <c>/tmp/&lt;prefix&gt;&lt;8 random chars&gt;</c>; short on purpose (unix socket paths are limited to ~100 chars).</summary>
    public static ShortTempDirectory Create(string prefix)
    {
        for (var attempt = 0; ; attempt++)
        {
            var path = System.IO.Path.Combine("/tmp", prefix + Guid.NewGuid().ToString("N")[..8]);
            if (!Directory.Exists(path))
            {
                Directory.CreateDirectory(path);
                return new ShortTempDirectory(path);
            }

            if (attempt > 10)
            {
                throw new IOException($"Could not create a unique temp directory with prefix {prefix}.");
            }
        }
    }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose() => DeleteBestEffort(Path);

    public override string ToString() => Path;

    internal static void DeleteBestEffort(string path)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }

                return;
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
