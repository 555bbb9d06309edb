using System.Net;
using System.Text.Json;
using Dsvm.Core.Checks;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.EndToEnd.Tests;

/// <summary>The default environment, built once per run: its checks, its size, and a workspace on it.</summary>
[Trait("Requires", "Docker")]
[Collection("e2e")]
public sealed class DatascienceTests
{
    [DockerFact]
    public async Task DatascienceBuildsSmallerThanItsGoalAndPassesEveryCheck()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("datascience");

        Assert.Equal(BuildStatus.Succeeded, record.Status);
        Assert.All(record.Checks, c => Assert.True(c.Passed, $"{c.Id}: {c.Detail}"));
        string[] notebooks = ["01-python-ml.ipynb", "02-r-tidyverse.ipynb", "03-pytorch.ipynb"];
        Assert.All(notebooks, n => Assert.Contains(record.Checks, c => c.Kind == CheckKind.Notebook && c.Target.EndsWith(n, StringComparison.Ordinal)));
        string[] imports = ["numpy", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "statsmodels", "xgboost", "sympy", "torch"];
        Assert.All(imports, m => Assert.Contains(record.Checks, c => c.Id == $"python:{m}"));
        Assert.Contains(record.Checks, c => c.Id == "r:tidyverse");
        Assert.Contains(record.Checks, c => c.Id == "kernel:ir");
        Assert.True(record.SizeBytes < 3_500_000_000, $"datascience is {record.SizeBytes / 1e9:F2} GB; the goal is under 3.5 GB");
    }

    [DockerFact]
    public async Task ADatascienceWorkspaceOffersPythonAndRKernels()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("datascience");
        const string name = "e2e-ds";
        await Dsvm.RunAsync("rm", name, "--delete-home");
        try
        {
            var up = await Dsvm.OkAsync("up", "--env", dir, "--size", "medium", "--name", name, "--output", "json");
            var endpoint = up.Json.GetProperty("endpoint").GetString()!;
            var token = up.Json.GetProperty("url").GetString()!.Split("token=")[1];
            using var http = HttpReadinessProbe.CreateClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(endpoint), $"user/local/{name}/api/kernelspecs"));
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("token", token);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var specs = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("kernelspecs");
            Assert.True(specs.TryGetProperty("python3", out _));
            Assert.True(specs.TryGetProperty("ir", out _));

            var samples = await Dsvm.OkAsync("exec", name, "--", "ls", "/home/dsvm/samples");
            Assert.Contains("03-pytorch.ipynb", samples.Stdout, StringComparison.Ordinal);
            var torch = await Dsvm.OkAsync("exec", name, "--", "python3", "-c", "import torch; print(torch.cuda.is_available(), float((torch.ones(2, 2) @ torch.ones(2, 2))[0, 0]))");
            Assert.Equal("False 2.0", torch.Stdout.Trim());
        }
        finally
        {
            await Dsvm.RunAsync("rm", name, "--delete-home");
        }
    }

    [Fact]
    public void TheGpuEnvironmentSpecIsValidAndFallsBackToCpu()
    {
        var spec = SpecLoader.Load(Path.Combine(TestEnvironment.EnvironmentsDir, "gpu"), ToolsetCatalog.Default);
        Assert.Equal(GpuMode.Optional, spec.Gpu);
        Assert.Contains("pytorch-cuda", spec.Toolsets);
        var checks = CheckPlan.For(spec, ToolsetCatalog.Default);
        Assert.Contains(checks, c => c.Kind == CheckKind.Command && c.Target.Contains("cpu matmul ok", StringComparison.Ordinal));
    }
}
