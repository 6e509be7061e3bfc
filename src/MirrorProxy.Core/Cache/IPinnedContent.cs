namespace MirrorProxy.Cache;

/// <summary>Content that must never be evicted.</summary>
internal interface IPinnedContent
{
    bool IsPinned(string digest);
}
