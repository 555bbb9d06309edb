using System.Net;
using System.Text;
using System.Text.Json;

namespace Dsvm.Hub.Tests;

/// <summary>
/// Every operation of the OpenAPI document, called a few hundred times with generated bodies and parameters (nulls,
/// wrong types, huge numbers, long strings, bad enums; fixed seed): never a 500, never a stack trace, and every 4xx is ProblemDetails (issue 12).
/// </summary>
public sealed class ApiFuzzTests : HubTestBase
{
    private static readonly string[] Values =
    [
        "null", "true", "0", "-1", "2147483647", "2147483648", "99999999999999999999", "1e400", "-1.5", "\"\"", "\"x\"",
        "\"" + new string('a', 5000) + "\"", "\"admin\"", "\"ws\\n\"", "\"../../etc\"", "[]", "[null]", "[1,\"a\"]", "{}", "{\"a\":{\"b\":[]}}",
        "\"NaN\"", "\"unlimited\"", "\"default\"", "\"small\"", "\"minimal\"",
    ];

    private static readonly string[] Fields =
        ["name", "password", "currentPassword", "scopes", "expiresInDays", "environment", "size", "count", "prestart", "prefix", "command",
         "timeoutSeconds", "admin", "maxWorkspaces", "maxVcpus", "maxGpus"];

    private static readonly string[] Segments = ["x", "admin", "ws-1", "a\u00e9", "%0A", "..", "%2F", new string('z', 300), "0"];

    [Fact]
    public async Task No_operation_answers_500_or_a_stack_trace_to_generated_input()
    {
        var admin = Hub.TokenClient((await CreateTokenAsync(await AdminAsync(), ["read", "workspaces", "admin"])).Str("token"));
        var doc = await (await Hub.Anonymous().GetAsync("openapi/v1.json").Expect(HttpStatusCode.OK)).JsonAsync();
        var operations = new List<(string Method, string Path)>();
        foreach (var path in doc.GetProperty("paths").EnumerateObject())
        {
            foreach (var op in path.Value.EnumerateObject())
            {
                // Streams (server-sent events) never end by design: not request/answer operations.
                if (op.Name is "get" or "post" or "put" or "patch" or "delete" && !path.Name.EndsWith("/events", StringComparison.Ordinal))
                {
                    operations.Add((op.Name.ToUpperInvariant(), path.Name));
                }
            }
        }

        Assert.True(operations.Count > 15, $"only {operations.Count} operations");
        var random = new Random(12);
        var failures = new List<string>();
        for (var i = 0; i < 500; i++)
        {
            var (method, template) = operations[i % operations.Count];
            var path = System.Text.RegularExpressions.Regex.Replace(template, "\\{[^}]+\\}", _ => Segments[random.Next(Segments.Length)]);
            // Never delete the admin the test acts as.
            if (method == "DELETE" && path.StartsWith("/api/v1/users/admin", StringComparison.Ordinal))
            {
                continue;
            }

            var query = random.Next(4) switch
            {
                0 => $"?wait=maybe&tail={Values[random.Next(Values.Length)]}&all=maybe&deleteHome=2",
                1 => "?wait=true&all=true&tail=5",
                _ => "",
            };
            using var request = new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/') + query);
            if (method != "GET" && method != "DELETE")
            {
                var body = random.Next(6) switch
                {
                    0 => Values[random.Next(Values.Length)],
                    1 => "{\"name\": ",
                    _ => "{" + string.Join(",", Enumerable.Range(0, random.Next(1, 5))
                        .Select(_ => $"\"{Fields[random.Next(Fields.Length)]}\":{Values[random.Next(Values.Length)]}")) + "}",
                };
                request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            }

            var sent = $"{method} {path}{query} {(request.Content is null ? "" : await request.Content.ReadAsStringAsync())}";
            sent = sent.Length > 200 ? sent[..200] + "…" : sent;
            // A bound, not a timing assertion: a request that never answers is reported by name instead of hanging the run.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            HttpResponseMessage response;
            try
            {
                response = await admin.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, bound.Token);
            }
            catch (OperationCanceledException)
            {
                failures.Add($"{sent} -> no answer");
                continue;
            }

            using (response)
            {
                var text = await response.Content.ReadAsStringAsync(bound.Token);
                var status = (int)response.StatusCode;
                var problem = response.Content.Headers.ContentType?.MediaType == "application/problem+json";
                if (status >= 500 && response.StatusCode != HttpStatusCode.NotImplemented
                    // The JSON API answers ProblemDetails; the login form (/hub/login) answers its HTML page with the error.
                    || status >= 400 && !problem && path.StartsWith("/api/", StringComparison.Ordinal)
                    || text.Contains("   at ", StringComparison.Ordinal) || text.Contains("Exception", StringComparison.Ordinal))
                {
                    failures.Add($"{sent} -> {status} {response.Content.Headers.ContentType} {text[..Math.Min(300, text.Length)]}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
    }
}
