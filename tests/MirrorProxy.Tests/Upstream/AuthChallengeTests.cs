using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Upstream;

public sealed class AuthChallengeTests
{
    [Fact]
    public void Parse_DockerHubBearerChallenge_YieldsRealmServiceAndScope()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(
            ["Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/nginx:pull\""]));

        Assert.True(challenge.IsBearer);
        Assert.False(challenge.IsBasic);
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Equal("https://auth.docker.io/token", challenge.Realm);
        Assert.Equal("registry.docker.io", challenge.Service);
        Assert.Equal("repository:library/nginx:pull", challenge.Scope);
        Assert.Null(challenge.Error);
    }

    [Fact]
    public void Parse_QuotedScopeWithComma_KeepsTheWholeScope()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(
            ["Bearer realm=\"https://r.test/token\",service=\"s\",scope=\"repository:x:pull,push\""]));

        Assert.Equal("repository:x:pull,push", challenge.Scope);
        Assert.Equal("s", challenge.Service);
        Assert.Equal(3, challenge.Parameters.Count);
    }

    [Fact]
    public void Parse_UnquotedService_IsReadAsToken()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(["Bearer realm=\"https://gcr.io/v2/token\",service=gcr.io"]));

        Assert.Equal("https://gcr.io/v2/token", challenge.Realm);
        Assert.Equal("gcr.io", challenge.Service);
    }

    [Fact]
    public void Parse_RealmOnly_HasNoServiceOrScope()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(["Bearer realm=\"https://r.test/token\""]));

        Assert.Equal("https://r.test/token", challenge.Realm);
        Assert.Null(challenge.Service);
        Assert.Null(challenge.Scope);
    }

    [Fact]
    public void Parse_BasicChallenge_IsBasicWithRealm()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(["Basic realm=\"x\""]));

        Assert.True(challenge.IsBasic);
        Assert.False(challenge.IsBearer);
        Assert.Equal("x", challenge.Realm);
    }

    [Fact]
    public void Parse_TwoChallengesInOneHeader_YieldsBothInOrder()
    {
        var challenges = AuthChallenge.Parse(["Basic realm=\"a\", Bearer realm=\"b\",service=\"s\""]);

        Assert.Equal(2, challenges.Count);
        Assert.True(challenges[0].IsBasic);
        Assert.Equal("a", challenges[0].Realm);
        Assert.Null(challenges[0].Service);
        Assert.True(challenges[1].IsBearer);
        Assert.Equal("b", challenges[1].Realm);
        Assert.Equal("s", challenges[1].Service);
    }

    [Fact]
    public void Parse_SeveralHeaderValues_YieldsOneChallengeEach()
    {
        var challenges = AuthChallenge.Parse(["Basic realm=\"a\"", "Bearer realm=\"b\""]);

        Assert.Equal(["Basic", "Bearer"], challenges.Select(c => c.Scheme));
    }

    [Fact]
    public void Parse_EscapedQuotesAndBackslashes_AreUnescaped()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(["Bearer realm=\"https://r.test/token\",error=\"invalid \\\"token\\\" a\\\\b\",service=\"s\""]));

        Assert.Equal("invalid \"token\" a\\b", challenge.Error);
        Assert.Equal("s", challenge.Service);
    }

    [Fact]
    public void Parse_InsufficientScopeError_IsExposed()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(
            ["Bearer realm=\"https://r.test/token\",service=\"s\",scope=\"repository:x:pull\",error=\"insufficient_scope\""]));

        Assert.Equal("insufficient_scope", challenge.Error);
        Assert.Equal("repository:x:pull", challenge.Scope);
    }

    [Fact]
    public void Parse_CaseAndWhitespaceVariations_AreTolerated()
    {
        var challenge = Assert.Single(AuthChallenge.Parse(["  bearer   Realm = \"https://r.test/token\" ,  SERVICE=s  "]));

        Assert.True(challenge.IsBearer);
        Assert.Equal("https://r.test/token", challenge.Realm);
        Assert.Equal("s", challenge.Service);
    }

    [Fact]
    public void Parse_Token68SchemeBeforeBearer_DoesNotSwallowTheBearerChallenge()
    {
        var challenges = AuthChallenge.Parse(["Negotiate abc==, Bearer realm=\"https://r.test/token\""]);

        Assert.Equal(2, challenges.Count);
        Assert.Equal("Negotiate", challenges[0].Scheme);
        Assert.Empty(challenges[0].Parameters);
        Assert.Equal("https://r.test/token", challenges[1].Realm);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(", ,")]
    public void Parse_EmptyHeader_YieldsNothing(string header)
    {
        Assert.Empty(AuthChallenge.Parse([header]));
    }
}
