using System.Net;
using System.Net.Http.Headers;
using Dsvm.Testing;

namespace Dsvm.EndToEnd.Tests;

/// <summary>Boots VMs through the real tool: skipped with a visible reason outside test.sh when qemu is missing.</summary>
public sealed class QemuFactAttribute : FactAttribute
{
    public QemuFactAttribute()
    {
        var qemu = Environment.GetEnvironmentVariable("PATH")?.Split(':').Any(d => File.Exists(Path.Combine(d, "qemu-system-x86_64"))) == true;
        if (TestEnvironment.DockerSkipReason is { } reason)
        {
            Skip = reason;
        }
        else if (!qemu && Environment.GetEnvironmentVariable("DSVM_REQUIRE_DOCKER") != "1")
        {
            Skip = "qemu-system-x86_64 not installed (scripts/host-setup.sh --vm)";
        }
    }
}

/// <summary><c>dsvm up --backend qemu</c>: the same workspace commands, on a VM booted from the exported disk.</summary>
[Trait("Requires", "Docker")]
[Collection("e2e")]
public sealed class QemuCliTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [QemuFact]
    public async Task UpWithTheQemuBackendRunsTheWorkspaceAsAVmThatTheOtherCommandsManage()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("minimal");
        const string name = "clivm";
        await Dsvm.RunAsync("rm", name, "--delete-home");
        try
        {
            var up = await Dsvm.OkAsync("up", "--env", dir, "--size", "small", "--name", name, "--backend", "qemu", "--output", "json");
            Assert.Equal("qemu", up.Json.GetProperty("backend").GetString());
            var url = up.Json.GetProperty("url").GetString()!;
            Assert.StartsWith("http://127.0.0.1:", url, StringComparison.Ordinal);
            var token = url.Split("token=")[1];
            using (var status = new HttpRequestMessage(HttpMethod.Get, new Uri(url.Split("lab?")[0] + "api/status")))
            {
                status.Headers.Authorization = new AuthenticationHeaderValue("token", token);
                using var r = await Http.SendAsync(status);
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            }

            var ls = await Dsvm.OkAsync("ls", "--output", "json");
            var row = ls.Json.GetProperty("workspaces").EnumerateArray().Single(w => w.GetProperty("name").GetString() == name);
            Assert.Equal("running", row.GetProperty("state").GetString());
            Assert.Equal("qemu", row.GetProperty("backend").GetString());

            var logs = await Dsvm.OkAsync("logs", name, "--tail", "200");
            Assert.Contains("dsvm-config", logs.Stdout, StringComparison.Ordinal);

            var exec = await Dsvm.RunAsync("exec", name, "--", "true");
            Assert.Equal(2, exec.ExitCode);
            Assert.Contains("`dsvm exec` works for workspaces on docker backends; 'clivm' runs on backend 'qemu'", exec.Stdout, StringComparison.Ordinal);

            var doctor = await Dsvm.RunAsync("doctor", "--output", "json");
            var qemu = doctor.Json.GetProperty("findings").EnumerateArray().Single(f => f.GetProperty("check").GetString()!.StartsWith("backend qemu", StringComparison.Ordinal));
            Assert.True(qemu.GetProperty("ok").GetBoolean(), qemu.ToString());
            Assert.Contains("1 VM(s) running", qemu.GetProperty("detail").GetString(), StringComparison.Ordinal);

            await Dsvm.OkAsync("stop", name);
            var stopped = (await Dsvm.OkAsync("ls", "--output", "json")).Json.GetProperty("workspaces").EnumerateArray().Single(w => w.GetProperty("name").GetString() == name);
            Assert.Equal("stopped", stopped.GetProperty("state").GetString());

            await Dsvm.OkAsync("rm", name, "--delete-home");
            var after = await Dsvm.OkAsync("ls", "--output", "json");
            Assert.DoesNotContain(after.Json.GetProperty("workspaces").EnumerateArray(), w => w.GetProperty("name").GetString() == name);
        }
        finally
        {
            await Dsvm.RunAsync("rm", name, "--delete-home");
        }
    }
}
