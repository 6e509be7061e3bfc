namespace MirrorProxy.Readiness;

/// <summary>
/// A list of images as operators have them: what <c>kubectl get pods -A -o jsonpath='{..image}'</c> prints
/// (whitespace-separated, with duplicates, and bare image IDs for untagged images), or one reference per line.
/// </summary>
internal static class ImageList
{
    /// <summary>The distinct references in input order, and how many bare image IDs were dropped.</summary>
    public static (IReadOnlyList<string> Images, int SkippedIds) Parse(string text)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var images = new List<string>();
        var skipped = 0;
        // '#' never appears in a reference: from it to the end of the line is a comment.
        var tokens = text.Split('\n').SelectMany(line =>
        {
            var hash = line.IndexOf('#');
            return (hash >= 0 ? line[..hash] : line).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        });
        foreach (var token in tokens)
        {
            if (Oci.ImageReference.IsImageId(token))
            {
                skipped++;
                continue;
            }

            if (seen.Add(token))
            {
                images.Add(token);
            }
        }

        return (images, skipped);
    }
}
