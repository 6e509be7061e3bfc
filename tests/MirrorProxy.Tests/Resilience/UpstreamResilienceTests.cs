using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Resilience;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Resilience;

public sealed class UpstreamResilienceTests
{
    private static readonly UpstreamRequest Request = new(HttpMethod.Get, "library/nginx", "manifests/latest");

    private readonly ManualTimeProvider _time = new();

    [Fact]
    public async Task SendAsync_RepeatedServerErrors_OpenTheBreakerAndLaterRequestsAreSkipped()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Status(HttpStatusCode.ServiceUnavailable));
        using var upstream = Create(handler, new OfflineMode(false));

        using (var first = await upstream.SendAsync(Request, CancellationToken.None))
        using (var second = await upstream.SendAsync(Request, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.ServerError, first.Outcome);
            Assert.Equal(UpstreamOutcome.ServerError, second.Outcome);
        }

        using var third = await upstream.SendAsync(Request, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Skipped, third.Outcome);
        Assert.Equal(2, handler.Requests.Count(r => r.Uri.AbsolutePath != "/v2/"));
        Assert.Equal(UpstreamHealthState.Down, upstream.Resilience.State);
    }

    [Fact]
    public async Task SendAsync_FirstTransportFailure_MarksTheUpstreamDownAtOnce()
    {
        var handler = new FakeHttpHandler((_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused"));
        using var upstream = Create(handler, new OfflineMode(false));

        using (var failed = await upstream.SendAsync(Request, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.Unreachable, failed.Outcome);
        }

        using var skipped = await upstream.SendAsync(Request, CancellationToken.None);
        Assert.Equal(UpstreamOutcome.Skipped, skipped.Outcome);
        Assert.Equal(UpstreamHealthState.Down, upstream.Resilience.State);
        Assert.Single(handler.Requests);
    }

    [Theory]
    [InlineData(10)]
    [InlineData(500)]
    public async Task SendAsync_TimeoutAfterManySuccesses_MarksDownAtOnceWhateverTheTrafficBefore(int successes)
    {
        var hang = false;
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            if (Volatile.Read(ref hang))
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(handler, new OfflineMode(false));
        for (var i = 0; i < successes; i++)
        {
            using var ok = await upstream.SendAsync(Request, CancellationToken.None);
            Assert.Equal(UpstreamOutcome.Success, ok.Outcome);
        }

        Volatile.Write(ref hang, true);
        var pending = upstream.SendAsync(Request, CancellationToken.None).AsTask();
        await WaitForRequestsAsync(handler, successes + 1);
        _time.Advance(TimeSpan.FromSeconds(3));
        using (var timedOut = await pending)
        {
            Assert.Equal(UpstreamOutcome.Unreachable, timedOut.Outcome);
        }

        for (var i = 0; i < 10; i++)
        {
            using var skipped = await upstream.SendAsync(Request, CancellationToken.None);
            Assert.Equal(UpstreamOutcome.Skipped, skipped.Outcome);
        }

        Assert.Equal(successes + 1, handler.Requests.Count);
    }

    [Fact]
    public async Task Probe_RegistryAnswersAgain_BringsTheUpstreamBack_ButACaptivePortalDoesNot()
    {
        var portal = true;
        var down = true;
        var handler = new FakeHttpHandler(request =>
        {
            if (Volatile.Read(ref down) && request.RequestUri!.AbsolutePath != "/v2/")
            {
                throw new HttpRequestException(HttpRequestError.ConnectionError, "unreachable");
            }

            return Volatile.Read(ref portal) ? FakeHttpHandler.Html("<html>Please log in</html>") : FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(handler, new OfflineMode(false));
        using (var failed = await upstream.SendAsync(Request, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.Unreachable, failed.Outcome);
        }

        // The probe meets the portal's login page: still down.
        await AdvanceUntilAsync(() => handler.Requests.Count(r => r.Uri.AbsolutePath == "/v2/") >= 1);
        Assert.Equal(UpstreamHealthState.Down, upstream.Resilience.State);

        Volatile.Write(ref portal, false);
        Volatile.Write(ref down, false);
        await AdvanceUntilAsync(() => upstream.Resilience.State == UpstreamHealthState.Healthy);

        using var answered = await upstream.SendAsync(Request, CancellationToken.None);
        Assert.Equal(UpstreamOutcome.Success, answered.Outcome);
    }

    [Fact]
    public async Task SendAsync_HtmlInsteadOfARegistryAnswer_IsInterceptedAndMarksDown()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Html("<html><body>Welcome aboard. Accept the terms to continue.</body></html>"));
        using var upstream = Create(handler, new OfflineMode(false));

        using (var response = await upstream.SendAsync(Request, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.Intercepted, response.Outcome);
            Assert.Null(response.Message);
        }

        Assert.Equal(UpstreamHealthState.Down, upstream.Resilience.State);
    }

    private async Task AdvanceUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10);
        }

        Assert.True(condition());
    }

    private static async Task WaitForRequestsAsync(FakeHttpHandler handler, int count)
    {
        for (var i = 0; i < 500 && handler.Requests.Count < count; i++)
        {
            await Task.Delay(10);
        }
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.Forbidden)]
    [InlineData(HttpStatusCode.Unauthorized)]
    [InlineData(HttpStatusCode.BadRequest)]
    public async Task SendAsync_ClientErrorAnswers_NeverOpenTheBreaker(HttpStatusCode status)
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Status(status));
        using var upstream = Create(handler, new OfflineMode(false));

        for (var i = 0; i < 6; i++)
        {
            using var response = await upstream.SendAsync(Request, CancellationToken.None);
            Assert.NotEqual(UpstreamOutcome.Skipped, response.Outcome);
        }

        Assert.Equal(6, handler.Requests.Count);
        Assert.Equal(UpstreamHealthState.Healthy, upstream.Resilience.State);
    }

    [Fact]
    public async Task SendAsync_OfflineSwitchedOnAtRunTime_StopsDialingAndOffAgainResumes()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json("{}"));
        var offline = new OfflineMode(false);
        using var upstream = Create(handler, offline);

        offline.Set(true);
        using (var skipped = await upstream.SendAsync(Request, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.Skipped, skipped.Outcome);
            Assert.Equal(UpstreamHealthState.Offline, upstream.Resilience.State);
            Assert.Empty(handler.Requests);
        }

        offline.Set(false);
        using var answered = await upstream.SendAsync(Request, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, answered.Outcome);
        Assert.Single(handler.Requests);
        Assert.False(offline.IsEnabled);
    }

    [Fact]
    public async Task SendAsync_NoHeadersBeforeTheTimeout_IsUnreachable()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            entered.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(handler, new OfflineMode(false));

        var pending = upstream.SendAsync(Request, CancellationToken.None).AsTask();
        await entered.Task;
        Assert.False(pending.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(3));

        using var response = await pending;
        Assert.Equal(UpstreamOutcome.Unreachable, response.Outcome);
        Assert.Equal("no response headers within 3 s", response.Detail);
    }

    private UpstreamRegistry Create(FakeHttpHandler handler, OfflineMode offline) => new(
        new UpstreamOptions { Name = "registry.test", Url = "https://registry.test", RequestTimeout = TimeSpan.FromSeconds(3) },
        new HttpMessageInvoker(handler),
        offline,
        TestUpstreams.Background,
        TestMetrics.Create(),
        _time,
        NullLoggerFactory.Instance);
}
