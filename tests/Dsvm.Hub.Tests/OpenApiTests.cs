using System.Net;

namespace Dsvm.Hub.Tests;

public sealed class OpenApiTests : HubTestBase
{
    [Fact]
    public async Task The_OpenAPI_document_is_public_and_describes_the_workspaces_API()
    {
        var r = await Hub.Anonymous().GetAsync("openapi/v1.json").Expect(HttpStatusCode.OK);
        var text = await r.Content.ReadAsStringAsync();
        Assert.Contains("/api/v1/workspaces", text, StringComparison.Ordinal);
        Assert.Contains("/api/v1/tokens", text, StringComparison.Ordinal);
        Assert.Equal("3", (await r.JsonAsync()).Str("openapi")[..1]);
    }

    [Fact]
    public async Task Healthz_is_public()
    {
        var health = await (await Hub.Anonymous().GetAsync("healthz").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("ok", health.Str("status"));
    }

    [Fact]
    public async Task The_hub_page_redirects_anonymous_browsers_to_the_login_form()
    {
        var r = await Hub.Anonymous().GetAsync("hub/").Expect(HttpStatusCode.Redirect);
        Assert.Equal("/hub/login?next=%2Fhub%2F", r.Headers.Location?.OriginalString);
    }
}
