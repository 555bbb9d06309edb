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
        Assert.Contains(record.Checks, c => c.Id == "python:torchvision");
        Assert.Contains(record.Checks, c => c.Id == "r:survival");
        Assert.True(record.SizeBytes <= 4_000_000_000, $"datascience is {record.SizeBytes / 1e9:F2} GB; the goal is at most 4 GB");
    }

    [DockerFact]
    public async Task TheNodeJsToolingIsLeftOutButWhatRLinksIntoItIsKept()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("datascience");

        // dpkg records the packages (the lock check holds) but wrote none of webpack's files; no link points to nothing,
        // the /usr/bin commands of the left-out tools are gone, and R's bslib reads the Bootstrap sources it links to.
        const string script = """
            dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' webpack jupyterlab
            test ! -e /usr/share/nodejs/webpack && echo webpack-files-absent
            test ! -e /usr/bin/webpack && test ! -L /usr/bin/webpack && echo webpack-command-absent
            echo "dangling: $(find /usr /etc /opt -xdev -xtype l -lname '*share/nodejs/*' ! -path '/usr/share/doc/*' | wc -l)"
            echo "nodejs files: $(find /usr/share/nodejs | wc -l)"
            Rscript -e 'suppressMessages(library(bslib)); f <- system.file("lib/bs3/assets/stylesheets/_bootstrap.scss", package = "bslib"); cat("bslib", length(readLines(f)) > 10, "\n")'
            """;
        var run = await BuiltEnvironment.Services.Docker.RunAsync(["run", "--rm", "--network", "none", "--entrypoint", "/bin/bash", record.Image, "-c", script], default);

        Assert.True(run.Ok, run.Stderr);
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("ii  webpack", lines);
        Assert.Contains("ii  jupyterlab", lines);
        Assert.Contains("webpack-files-absent", lines);
        Assert.Contains("webpack-command-absent", lines);
        Assert.Contains("dangling: 0", lines);
        Assert.Contains("bslib TRUE ", lines);
        var kept = int.Parse(lines.Single(l => l.StartsWith("nodejs files: ", StringComparison.Ordinal))["nodejs files: ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(kept < 2_000, $"{kept} files under /usr/share/nodejs; the filter keeps only what R links to");
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

    /// <summary>What a new kernel sees: torch's and the loaded BLAS's thread counts and the thread variables.</summary>
    private const string ThreadsCode = """
        import os, numpy, torch, threadpoolctl
        blas = sorted({i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})
        names = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS", "MC_CORES"]
        print(torch.get_num_threads(), blas, sorted({os.environ.get(n) for n in names}))
        """;

    [DockerFact]
    public async Task ThreadPoolsFollowTheWorkspaceSizeAcrossAResize()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("datascience");
        const string name = "e2e-threads";
        await Dsvm.RunAsync("rm", name, "--delete-home");
        try
        {
            await Dsvm.OkAsync("up", "--env", dir, "--size", "small", "--name", name, "--output", "json");
            Assert.Equal("1 [1] ['1']", (await WorkspaceKernel.RunAsync(name, ThreadsCode)).Trim());

            await Dsvm.OkAsync("resize", name, "--size", "medium");
            Assert.Equal("2 [2] ['2']", (await WorkspaceKernel.RunAsync(name, ThreadsCode)).Trim());
        }
        finally
        {
            await Dsvm.RunAsync("rm", name, "--delete-home");
        }
    }

    [DockerFact]
    public async Task PipInstallWithoutFlagsGoesToTheHomeAndANewKernelImportsItAfterStopAndStart()
    {
        var (dir, _) = await BuiltEnvironment.GetAsync("datascience");
        const string name = "e2e-pip";
        await Dsvm.RunAsync("rm", name, "--delete-home");
        try
        {
            await Dsvm.OkAsync("up", "--env", dir, "--size", "small", "--name", name, "--output", "json");
            var wheel = Convert.ToBase64String(WorkspaceKernel.Wheel("dsvm_tiny", "1.0"));
            // A PEP 503 index served on the workspace's own loopback (its network namespace) for the length of one
            // `pip install dsvm-tiny`, run as a user runs it from a notebook or terminal: no flags, the index from
            // PIP_INDEX_URL, as a pip.conf or the environment would give it.
            var install = await WorkspaceKernel.RunAsync(name, $$"""
                import base64, functools, http.server, os, subprocess, tempfile, threading
                root = tempfile.mkdtemp()
                os.makedirs(root + "/simple/dsvm-tiny")
                open(root + "/simple/dsvm-tiny/dsvm_tiny-1.0-py3-none-any.whl", "wb").write(base64.b64decode("{{wheel}}"))
                open(root + "/simple/dsvm-tiny/index.html", "w").write('<a href="dsvm_tiny-1.0-py3-none-any.whl">dsvm_tiny-1.0-py3-none-any.whl</a>')
                server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=root))
                threading.Thread(target=server.serve_forever, daemon=True).start()
                index = "http://127.0.0.1:%d/simple/" % server.server_address[1]
                r = subprocess.run(["pip", "install", "dsvm-tiny"], env=dict(os.environ, PIP_INDEX_URL=index), capture_output=True, text=True)
                server.shutdown()
                print("pip exit", r.returncode)
                print(r.stdout, r.stderr)
                """);
            Assert.Contains("pip exit 0", install, StringComparison.Ordinal);
            Assert.Matches("Successfully installed dsvm[-_]tiny-1.0", install);

            await Dsvm.OkAsync("stop", name);
            await Dsvm.OkAsync("start", name);
            var imported = await WorkspaceKernel.RunAsync(name, "import dsvm_tiny; print(dsvm_tiny.__version__, dsvm_tiny.__file__)");
            Assert.StartsWith("1.0 /home/dsvm/.local/lib/python3", imported.Trim(), StringComparison.Ordinal);
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
