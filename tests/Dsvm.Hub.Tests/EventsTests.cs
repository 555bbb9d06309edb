using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Dsvm.Hub.Tests;

public sealed class EventsTests : HubTestBase
{
    /// <summary>An open /api/v1/events stream, read line by line.</summary>
    private sealed class EventStream : IDisposable
    {
        private readonly HttpResponseMessage _response;
        private readonly StreamReader _reader;

        private EventStream(HttpResponseMessage response, StreamReader reader)
        {
            _response = response;
            _reader = reader;
        }

        public List<JsonElement> Received { get; } = [];

        /// <summary>The id of each event in <see cref="Received"/>, in order.</summary>
        public List<long> Ids { get; } = [];

        private long? _pendingId;

        public static async Task<EventStream> OpenAsync(HttpClient c, long? lastEventId = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/events");
            if (lastEventId is { } last)
            {
                request.Headers.Add("Last-Event-ID", last.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            var response = await c.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var stream = new EventStream(response, reader);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            // The comment comes once the subscription exists: events after this point are not missed.
            Assert.Equal(": connected", await reader.ReadLineAsync(timeout.Token));
            return stream;
        }

        /// <summary>Reads events until one matches (20 s at most); every event read is kept in <see cref="Received"/>.</summary>
        public async Task<JsonElement> WaitForAsync(Func<JsonElement, bool> match)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            string? eventName = null;
            while (true)
            {
                string? line;
                try
                {
                    line = await _reader.ReadLineAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"no matching event within 20 s; received: {string.Join(" | ", Received)}");
                    throw;
                }

                Assert.NotNull(line);
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    eventName = line["event: ".Length..];
                }
                else if (line.StartsWith("id: ", StringComparison.Ordinal))
                {
                    _pendingId = long.Parse(line["id: ".Length..], System.Globalization.CultureInfo.InvariantCulture);
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    Assert.Equal("workspace", eventName);
                    var e = JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
                    Received.Add(e);
                    Ids.Add(_pendingId ?? -1);
                    _pendingId = null;
                    if (match(e))
                    {
                        return e;
                    }
                }
                else if (line.Length == 0)
                {
                    eventName = null;
                }
            }
        }

        public void Dispose()
        {
            _reader.Dispose();
            _response.Dispose();
        }
    }

    private static Func<JsonElement, bool> Running(string owner, string name) =>
        e => e.Str("owner") == owner && e.Str("name") == name && e.Str("state") == "running";

    [Fact]
    public async Task The_event_stream_reports_a_start_until_running()
    {
        var alice = await UserTokenClientAsync("alice");
        using var events = await EventStream.OpenAsync(alice);
        await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
        var running = await events.WaitForAsync(Running("alice", "ws1"));
        Assert.Equal("ready", running.Str("message"));
        Assert.Contains(events.Received, e => e.Str("state") == "pending");
        Assert.Contains(events.Received, e => e.Str("state") == "starting");
    }

    [Fact]
    public async Task A_change_the_manager_makes_outside_the_API_reaches_the_routes_and_the_stream_before_its_call_returns()
    {
        // Issue 10 part 7: the manager publishes its state. A stop that does not go through the API (the culler, a
        // repair) used to leave the proxy's cached route pointing at the stopped server and told no event stream.
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var routes = Hub.App.Services.GetRequiredService<Dsvm.Hub.Services.RouteTable>();
        Assert.NotNull(await routes.FindAsync("alice", "ws1", CancellationToken.None));
        using var events = await EventStream.OpenAsync(alice);

        await Hub.App.Services.GetRequiredService<Dsvm.Core.Workspaces.WorkspaceManager>()
            .StopAsync("alice", "ws1", null, CancellationToken.None, reason: "idle for 1h02m");

        Assert.Null(await routes.FindAsync("alice", "ws1", CancellationToken.None));
        var stopped = await events.WaitForAsync(e => e.Str("name") == "ws1" && e.Str("state") == "stopped");
        Assert.Equal("stopped: idle for 1h02m; home kept", stopped.Str("message"));
    }

    [Fact]
    public async Task A_user_does_not_receive_other_users_events()
    {
        var alice = await UserTokenClientAsync("alice");
        var bob = await UserTokenClientAsync("bob");
        using var aliceEvents = await EventStream.OpenAsync(alice);
        using var bobEvents = await EventStream.OpenAsync(bob);

        await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
        await aliceEvents.WaitForAsync(Running("alice", "ws1"));
        await bob.PostAsJsonAsync("api/v1/workspaces", new { name = "ws2", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
        await bobEvents.WaitForAsync(Running("bob", "ws2"));

        Assert.All(bobEvents.Received, e => Assert.Equal("bob", e.Str("owner")));
        Assert.DoesNotContain(aliceEvents.Received, e => e.Str("owner") == "bob");
    }

    [Fact]
    public async Task An_admin_receives_every_users_events()
    {
        var admin = await AdminAsync();
        var alice = await UserTokenClientAsync("alice");
        using var adminEvents = await EventStream.OpenAsync(admin.Http);
        await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
        await adminEvents.WaitForAsync(Running("alice", "ws1"));
    }

    [Fact]
    public async Task Events_carry_increasing_ids_and_a_reconnect_with_Last_Event_ID_replays_what_was_missed()
    {
        var alice = await UserTokenClientAsync("alice");
        long lastSeen;
        using (var events = await EventStream.OpenAsync(alice))
        {
            await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
            await events.WaitForAsync(Running("alice", "ws1"));
            Assert.All(events.Ids, id => Assert.True(id > 0, "an event without an id"));
            Assert.Equal(events.Ids.Order().Distinct(), events.Ids);
            lastSeen = events.Ids[^1];
        }

        // While the client is away: bob's workspace (not alice's business) and alice's second one.
        var bob = await UserTokenClientAsync("bob");
        await StartRunningAsync(bob, "bobs");
        await StartRunningAsync(alice, "ws2");

        using var again = await EventStream.OpenAsync(alice, lastSeen);
        await again.WaitForAsync(Running("alice", "ws2"));
        Assert.Contains(again.Received, e => e.Str("name") == "ws2" && e.Str("state") == "pending");
        Assert.DoesNotContain(again.Received, e => e.Str("name") == "ws1");
        Assert.DoesNotContain(again.Received, e => e.Str("owner") == "bob");
        Assert.All(again.Ids, id => Assert.True(id > lastSeen));
    }

    [Fact]
    public async Task A_Last_Event_ID_older_than_the_buffer_says_events_were_lost()
    {
        var alice = await UserTokenClientAsync("alice");
        var events = Hub.App.Services.GetRequiredService<Dsvm.Core.Workspaces.WorkspaceNotifications>();
        for (var i = 0; i < Dsvm.Hub.Services.WorkspaceEvents.ReplayCapacity + 10; i++)
        {
            events.Message("alice", "ws9", Dsvm.Core.Workspaces.WorkspaceState.Starting, $"step {i}");
        }

        using var response = await alice.SendAsync(
            new HttpRequestMessage(HttpMethod.Get, "api/v1/events") { Headers = { { "Last-Event-ID", "1" } } }, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        Assert.Equal(": connected", await reader.ReadLineAsync(timeout.Token));
        Assert.Equal("", await reader.ReadLineAsync(timeout.Token));
        Assert.Equal("event: reset", await reader.ReadLineAsync(timeout.Token));
    }

    [Fact]
    public async Task The_event_stream_needs_credentials()
    {
        await Hub.Anonymous().GetAsync("api/v1/events").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Stopping_the_hub_ends_open_event_streams_promptly()
    {
        var alice = await UserTokenClientAsync("alice");
        using var events = await EventStream.OpenAsync(alice);
        var watch = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await Hub.App.StopAsync(cts.Token);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"stopping took {watch.Elapsed.TotalSeconds:0.0} s with an event stream open");
    }
}
