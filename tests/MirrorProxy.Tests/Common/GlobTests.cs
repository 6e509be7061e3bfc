using MirrorProxy.Common;

namespace MirrorProxy.Tests.Common;

public sealed class GlobTests
{
    [Theory]
    [InlineData("library/**", "library/nginx", true)]
    [InlineData("library/**", "library/team/nginx", true)]
    [InlineData("library/**", "library", false)]
    [InlineData("library/*", "library/team/nginx", false)]
    [InlineData("**/nginx", "nginx", true)]
    [InlineData("**/nginx", "a/b/nginx", true)]
    [InlineData("a/**/b", "a/b", true)]
    [InlineData("a/**/b", "a/x/y/b", true)]
    [InlineData("team/app-?", "team/app-1", true)]
    [InlineData("team/app-?", "team/app-12", false)]
    [InlineData("team/*.io", "team/xio", false)]
    [InlineData("**", "anything/at/all", true)]
    public void Create_MatchesWholeNamesBySegment(string pattern, string name, bool expected) => Assert.Equal(expected, Glob.Create(pattern).IsMatch(name));
}
