using System.Text;
using System.Text.Json;
using MirrorProxy.Protocol;
using MirrorProxy.PullThrough;

namespace MirrorProxy.Tests.Protocol;

public sealed class TagsPageTests
{
    [Fact]
    public void Paginate_UpstreamSentALink_KeepsItsPageAndLinkAndRenames()
    {
        const string link = "</v2/nginx/tags/list?last=b&n=2&ns=docker.io>; rel=\"next\"";

        var (body, resultLink) = TagsPage.Paginate(["b", "a"], "nginx", 2, null, link, "docker.io");

        Assert.Equal("""{"name":"nginx","tags":["b","a"]}""", Encoding.UTF8.GetString(body));
        Assert.Equal(link, resultLink);
    }

    [Fact]
    public void Paginate_UnpaginatedUpstream_SortsInAsciiOrderWithoutDuplicates()
    {
        var (body, link) = TagsPage.Paginate(["b", "a", "B", "1", "_x", "a"], "ghcr.io/org/app", null, null, null, null);

        Assert.Equal(["1", "B", "_x", "a", "b"], Tags(body));
        Assert.Null(link);
        Assert.Equal("ghcr.io/org/app", Name(body));
    }

    [Fact]
    public void Paginate_FirstPageOfMany_LinksToTheNextPageKeepingNs()
    {
        var (body, link) = TagsPage.Paginate(["c", "a", "d", "b"], "library/nginx", 2, null, null, "docker.io");

        Assert.Equal(["a", "b"], Tags(body));
        Assert.Equal("</v2/library/nginx/tags/list?n=2&last=b&ns=docker.io>; rel=\"next\"", link);
    }

    [Fact]
    public void Paginate_LastGiven_StartsAfterIt()
    {
        var (body, link) = TagsPage.Paginate(["c", "a", "d", "b"], "r", 2, "b", null, null);

        Assert.Equal(["c", "d"], Tags(body));
        Assert.Null(link);
    }

    [Fact]
    public void Paginate_LastWithoutLimit_ReturnsEverythingAfterIt()
    {
        var (body, link) = TagsPage.Paginate(["v1", "v3", "v2"], "r", null, "v1", null, null);

        Assert.Equal(["v2", "v3"], Tags(body));
        Assert.Null(link);
    }

    [Fact]
    public void Paginate_MiddlePage_LinksWithoutNsWhenRoutedByPath()
    {
        var (body, link) = TagsPage.Paginate(["e", "d", "c", "b", "a"], "quay.io/org/app", 2, "a", null, null);

        Assert.Equal(["b", "c"], Tags(body));
        Assert.Equal("</v2/quay.io/org/app/tags/list?n=2&last=c>; rel=\"next\"", link);
    }

    [Theory]
    [InlineData("""{"name":"x","tags":null}""")]
    [InlineData("""{"name":"x"}""")]
    [InlineData("""[]""")]
    [InlineData("""{"tags":{"a":1}}""")]
    public void ReadTags_NoTagArray_IsEmpty(string upstream)
    {
        Assert.Empty(ListingService.ReadTags(Utf8(upstream)));
    }

    [Fact]
    public void ReadTags_NonStringAndInvalidEntries_AreDropped()
    {
        Assert.Equal(["a", "c"], ListingService.ReadTags("""{"name":"x","tags":["a",1,null,{"b":2},"c","../x"],"extra":true}"""u8));
    }

    [Fact]
    public void ReadTags_NotJson_IsEmpty()
    {
        Assert.Empty(ListingService.ReadTags("{\"tags\":["u8));
    }

    [Fact]
    public void Write_NameAndTags_IsTheSpecShape()
    {
        Assert.Equal("""{"name":"a/b","tags":[]}""", Encoding.UTF8.GetString(TagsPage.Write("a/b", [])));
        Assert.Equal("""{"name":"a","tags":["1","2"]}""", Encoding.UTF8.GetString(TagsPage.Write("a", ["1", "2"])));
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static string[] Tags(byte[] body)
    {
        using var json = JsonDocument.Parse(body);
        return [.. json.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!)];
    }

    private static string? Name(byte[] body)
    {
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("name").GetString();
    }
}
