using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class OciNamesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("nginx")]
    [InlineData("library/nginx")]
    [InlineData("docker.io/library/nginx")]
    [InlineData("a__b")]
    [InlineData("a_b")]
    [InlineData("a.b")]
    [InlineData("a-b")]
    [InlineData("a-----b")]
    [InlineData("a-b.c_d__e")]
    [InlineData("a/b/c/d/e")]
    [InlineData("my-org/my.app_v2/x")]
    public void IsValidRepository_GrammarConformingName_IsTrue(string name)
    {
        Assert.True(OciNames.IsValidRepository(name));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Library/nginx")]
    [InlineData("library/Nginx")]
    [InlineData("a___b")]
    [InlineData("a_.b")]
    [InlineData("a._b")]
    [InlineData("a..b")]
    [InlineData("a.-b")]
    [InlineData("a-.b")]
    [InlineData("a_-b")]
    [InlineData("-a")]
    [InlineData("a-")]
    [InlineData("_a")]
    [InlineData("a_")]
    [InlineData(".a")]
    [InlineData("a.")]
    [InlineData("/a")]
    [InlineData("a/")]
    [InlineData("a//b")]
    [InlineData("a/-b")]
    [InlineData("a b")]
    [InlineData("a:b")]
    [InlineData("localhost:5000/a")]
    [InlineData("a/b@c")]
    public void IsValidRepository_NameOutsideGrammar_IsFalse(string name)
    {
        Assert.False(OciNames.IsValidRepository(name));
    }

    [Fact]
    public void IsValidRepository_LengthLimit_Is255Characters()
    {
        Assert.True(OciNames.IsValidRepository(new string('a', 255)));
        Assert.False(OciNames.IsValidRepository(new string('a', 256)));
        Assert.True(OciNames.IsValidRepository(string.Concat(Enumerable.Repeat("a/", 127)) + "a"));
        Assert.False(OciNames.IsValidRepository(string.Concat(Enumerable.Repeat("a/", 127)) + "ab"));
    }

    [Theory]
    [InlineData("latest")]
    [InlineData("1.27")]
    [InlineData("v1.0.0-rc_1")]
    [InlineData("_private")]
    [InlineData("UPPER")]
    [InlineData("a")]
    [InlineData("sha256-0123456789abcdef.sig")]
    public void IsValidTag_GrammarConformingTag_IsTrue(string tag)
    {
        Assert.True(OciNames.IsValidTag(tag));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".hidden")]
    [InlineData("-dash")]
    [InlineData("a/b")]
    [InlineData("a:b")]
    [InlineData("a+b")]
    [InlineData("a b")]
    [InlineData("tag@x")]
    public void IsValidTag_TagOutsideGrammar_IsFalse(string tag)
    {
        Assert.False(OciNames.IsValidTag(tag));
    }

    [Fact]
    public void IsValidTag_LengthLimit_Is128Characters()
    {
        Assert.True(OciNames.IsValidTag(new string('t', 128)));
        Assert.False(OciNames.IsValidTag(new string('t', 129)));
    }
}
