using System.Net;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.EndToEnd.Tests;

/// <summary>A user's session with the real tool: every workspace command, JSON output, exit codes.</summary>
[Trait("Requires", "Docker")]
[Collection("e2e")]
public sealed class CliSessionTests
{
    private static readonly HttpClient Http = HttpReadinessProbe.CreateClient();

    [DockerFact]
    public async Task AWorkspaceGoesThroughEveryCommand()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("minimal");
        const string name = "e2e";
        await Dsvm.RunAsync("rm", name, "--delete-home");
        try
        {
            var up = await Dsvm.OkAsync("up", "--env", dir, "--size", "small", "--name", name, "--output", "json");
            var url = up.Json.GetProperty("url").GetString()!;
            Assert.StartsWith("http://127.0.0.1:", url, StringComparison.Ordinal);
            Assert.Contains($"/user/local/{name}/lab?token=", url, StringComparison.Ordinal);
            using (var lab = await Http.GetAsync(new Uri(url)))
            {
                Assert.Equal(HttpStatusCode.OK, lab.StatusCode);
                Assert.Contains("JupyterLab", await lab.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            var ls = await Dsvm.OkAsync("ls", "--output", "json");
            var row = ls.Json.GetProperty("workspaces").EnumerateArray().Single(w => w.GetProperty("name").GetString() == name);
            Assert.Equal("running", row.GetProperty("state").GetString());
            Assert.Equal("small", row.GetProperty("size").GetString());
            var table = await Dsvm.OkAsync("ls");
            Assert.Contains(name, table.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("token=", table.Stdout, StringComparison.Ordinal);

            var exec = await Dsvm.OkAsync("exec", name, "--", "python3", "-c", "print(6 * 7)");
            Assert.Equal("42", exec.Stdout.Trim());
            await Dsvm.OkAsync("exec", name, "--", "sh", "-c", "echo survived > ~/proof.txt");

            var logs = await Dsvm.OkAsync("logs", name, "--tail", "50");
            Assert.Contains("ServerApp", logs.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(url.Split("token=")[1], logs.Stdout, StringComparison.Ordinal);

            var resized = await Dsvm.OkAsync("resize", name, "--size", "medium", "--output", "json");
            Assert.Equal("medium", resized.Json.GetProperty("size").GetString());
            Assert.Equal("survived", (await Dsvm.OkAsync("exec", name, "--", "cat", "/home/dsvm/proof.txt")).Stdout.Trim());

            var tooBig = await Dsvm.RunAsync("resize", name, "--size", "xlarge");
            Assert.Equal(9, tooBig.ExitCode);
            Assert.Contains("does not fit this host", tooBig.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", tooBig.Stdout + tooBig.Stderr, StringComparison.Ordinal);

            var stop = await Dsvm.OkAsync("stop", name, "--output", "json");
            Assert.Equal("stopped", stop.Json.GetProperty("state").GetString());
            var urlWhileStopped = await Dsvm.RunAsync("url", name);
            Assert.Equal(10, urlWhileStopped.ExitCode);

            var start = await Dsvm.OkAsync("start", name, "--output", "json");
            Assert.Equal("running", start.Json.GetProperty("state").GetString());
            Assert.Equal("survived", (await Dsvm.OkAsync("exec", name, "--", "cat", "/home/dsvm/proof.txt")).Stdout.Trim());
            Assert.StartsWith("http://127.0.0.1:", (await Dsvm.OkAsync("url", name)).Stdout.Trim(), StringComparison.Ordinal);

            var rm = await Dsvm.OkAsync("rm", name, "--output", "json");
            Assert.False(rm.Json.GetProperty("homeDeleted").GetBoolean());
            var gone = await Dsvm.RunAsync("stop", name);
            Assert.Equal(4, gone.ExitCode);
            Assert.Contains($"no workspace '{name}'", gone.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            await Dsvm.RunAsync("rm", name, "--delete-home");
            await BuiltEnvironment.Services.Docker.RunAsync(["volume", "rm", "-f", $"dsvm-home-local-{name}"], default);
        }
    }

    [DockerFact]
    public async Task BadInputGetsOneClearLineAndANamedExitCode()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("minimal");
        var badSize = await Dsvm.RunAsync("up", "--env", dir, "--size", "hugee", "--name", "bad");
        Assert.Equal(4, badSize.ExitCode);
        Assert.Contains("unknown size 'hugee'", badSize.Stdout, StringComparison.Ordinal);

        var badName = await Dsvm.RunAsync("up", "--env", dir, "--name", "Not_Valid");
        Assert.Equal(2, badName.ExitCode);
        Assert.Contains("not a valid workspace name", badName.Stdout, StringComparison.Ordinal);

        var badEnv = await Dsvm.RunAsync("up", "--env", "no-such-environment");
        Assert.Equal(4, badEnv.ExitCode);
        Assert.Contains("unknown environment 'no-such-environment'", badEnv.Stdout, StringComparison.Ordinal);

        var spec = Path.Combine(TestEnvironment.Home, "work", "bad-spec.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(spec)!);
        await File.WriteAllTextAsync(spec, "name: bad\ntoolsets: [python]\npackages: [\"Not A Package\"]\ncolour: blue\n");
        var invalid = await Dsvm.RunAsync("env", "validate", spec);
        Assert.Equal(3, invalid.ExitCode);
        Assert.Contains("bad-spec.yaml:3:12: packages[0]: 'Not A Package' is not a valid Debian package name", invalid.Stdout, StringComparison.Ordinal);
        Assert.Contains("bad-spec.yaml:4:1: colour: unknown key 'colour'", invalid.Stdout, StringComparison.Ordinal);
        var json = await Dsvm.RunAsync("env", "validate", spec, "--output", "json");
        Assert.Equal("invalid-spec", json.Json.GetProperty("error").GetString());

        var badBackend = await Dsvm.RunAsync("up", "--env", dir, "--name", "bad", "--backend", "swarmm");
        Assert.Equal(2, badBackend.ExitCode);
        Assert.Contains("unknown backend 'swarmm' (configured: docker, qemu", badBackend.Stdout, StringComparison.Ordinal);

        var backends = Path.Combine(TestEnvironment.Home, "work", "bad-backends.yaml");
        await File.WriteAllTextAsync(backends, "backends:\n  docker: {}\n  cluster: { type: kubernets }\nroutes:\n  sizes: { small: nowhere }\n");
        var badConfig = await Dsvm.RunWithAsync(new Dictionary<string, string> { ["DSVM_BACKENDS"] = backends }, "up", "--env", dir, "--name", "bad");
        Assert.Equal(3, badConfig.ExitCode);
        Assert.Contains("bad-backends.yaml:3:20: backends.cluster.type: 'kubernets' is not a backend type (did you mean 'kubernetes'?)", badConfig.Stdout, StringComparison.Ordinal);
        Assert.Contains("bad-backends.yaml:5:19: routes.sizes.small: 'nowhere' is not a configured backend", badConfig.Stdout, StringComparison.Ordinal);

        foreach (var r in new[] { badSize, badName, badEnv, invalid, badBackend, badConfig })
        {
            Assert.DoesNotContain("   at ", r.Stdout + r.Stderr, StringComparison.Ordinal);
        }

        var ls = await Dsvm.OkAsync("ls", "--output", "json");
        Assert.DoesNotContain(ls.Json.GetProperty("workspaces").EnumerateArray(), w => w.GetProperty("name").GetString() == "bad");
    }

    [DockerFact]
    public async Task EnvironmentCommandsReportBuildsChecksAndPackages()
    {
        var (dir, record) = await BuiltEnvironment.GetAsync("minimal");

        var build = await Dsvm.OkAsync("env", "build", dir, "--frozen", "--output", "json");
        Assert.True(build.Json.GetProperty("cached").GetBoolean());
        Assert.Equal(record.Image, build.Json.GetProperty("image").GetString());

        var test = await Dsvm.OkAsync("env", "test", record.Image, "--output", "json");
        Assert.Equal(0, test.Json.GetProperty("failed").GetInt32());
        Assert.True(test.Json.GetProperty("passed").GetInt32() >= 8);

        var inspect = await Dsvm.OkAsync("env", "inspect", record.Image, "--output", "json");
        var packages = inspect.Json.GetProperty("packages").EnumerateArray().ToList();
        Assert.Contains(packages, p => p.GetProperty("name").GetString() == "jupyterlab" && p.GetProperty("version").GetString()!.StartsWith("4.", StringComparison.Ordinal));
        Assert.True(inspect.Json.GetProperty("sizeBytes").GetInt64() > 100_000_000);
        Assert.Contains("python3", inspect.Json.GetProperty("kernels").EnumerateArray().Select(k => k.GetString()));
        Assert.Contains("packages", (await Dsvm.OkAsync("env", "inspect", record.Image)).Stdout, StringComparison.Ordinal);

        var list = await Dsvm.OkAsync("env", "list", "--output", "json");
        Assert.Contains(list.Json.GetProperty("images").EnumerateArray(), i => i.GetProperty("image").GetString() == record.Image);

        var doctor = await Dsvm.OkAsync("doctor", "--output", "json");
        Assert.True(doctor.Json.GetProperty("ok").GetBoolean());
        Assert.Contains(doctor.Json.GetProperty("findings").EnumerateArray(), f => f.GetProperty("check").GetString() == "workspace uid" && f.GetProperty("ok").GetBoolean());
        var sizes = await Dsvm.OkAsync("sizes", "--output", "json");
        var small = sizes.Json.GetProperty("sizes").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "small");
        Assert.True(small.GetProperty("runnable").GetBoolean());
    }
}

[CollectionDefinition("e2e", DisableParallelization = true)]
public sealed class EndToEndCollection;
