using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images.Tests;

public sealed class DockerfileRendererTests
{
    private static RenderedBuild Render(DemoEnvironment env, IReadOnlyList<LockedPackage>? extra = null)
    {
        var spec = env.Spec();
        return DockerfileRenderer.Render(spec, DemoEnvironment.Lock(spec, extra), ToolsetCatalog.Default);
    }

    private static byte[] Tar(RenderedBuild build)
    {
        using var stream = new MemoryStream();
        build.Context.WriteTar(stream);
        return stream.ToArray();
    }

    private static string Dockerfile(RenderedBuild build) => build.Context.Text("Dockerfile");

    private static int IndexOf(string text, string part)
    {
        var i = text.IndexOf(part, StringComparison.Ordinal);
        Assert.True(i >= 0, $"'{part}' not found in:\n{text}");
        return i;
    }

    // ---- determinism and layer reuse ----

    [Fact]
    public void SameInputs_GiveTheSameTagAndAByteIdenticalTar()
    {
        using var env = new DemoEnvironment();

        var a = Render(env);
        var b = Render(env);

        Assert.Equal(a.Tag, b.Tag);
        Assert.Equal(Tar(a), Tar(b));
    }

    [Fact]
    public void SameInputs_InAnotherFolder_GiveTheSameTagAndTar()
    {
        using var one = new DemoEnvironment();
        using var two = new DemoEnvironment();

        var a = Render(one);
        var b = Render(two);

        Assert.NotEqual(one.Path, two.Path);
        Assert.Equal(a.Tag, b.Tag);
        Assert.Equal(Tar(a), Tar(b));
    }

    [Fact]
    public void Tag_IsSixteenHexDigits_AndTheImageIsNamedAfterTheEnvironment()
    {
        using var env = new DemoEnvironment();

        var build = Render(env);

        Assert.Matches("^[0-9a-f]{16}$", build.Tag);
        Assert.Equal("dsvm/demo", build.Repository);
        Assert.Equal($"dsvm/demo:{build.Tag}", build.Image);
    }

    [Fact]
    public void ChangingASample_ChangesTheTag_ButNotTheToolsetLayerFile()
    {
        using var env = new DemoEnvironment();
        var before = Render(env);

        env.Write("samples/hello.ipynb", "{\"cells\": [{\"cell_type\": \"markdown\", \"source\": \"changed\"}]}");
        var after = Render(env);

        Assert.NotEqual(before.Tag, after.Tag);
        Assert.Equal(before.Context.Text("dsvm/lock/toolsets.txt"), after.Context.Text("dsvm/lock/toolsets.txt"));
        Assert.Equal(before.Context.Text("dsvm/lock/extra.txt"), after.Context.Text("dsvm/lock/extra.txt"));
    }

    [Fact]
    public void AddingAnExtraPackage_ChangesExtraTxt_ButNotToolsetsTxt()
    {
        using var one = new DemoEnvironment();
        using var two = new DemoEnvironment(DemoEnvironment.SpecText.Replace(
            "packages: [fonts-dejavu-core]", "packages: [fonts-dejavu-core, jq]", StringComparison.Ordinal));

        var before = Render(one);
        var after = Render(two, [new("fonts-dejavu-core", "2.37-8"), new("jq", "1.7.1-6"), new("libjq1", "1.7.1-6")]);

        Assert.NotEqual(before.Tag, after.Tag);
        Assert.Equal(before.Context.Text("dsvm/lock/toolsets.txt"), after.Context.Text("dsvm/lock/toolsets.txt"));
        Assert.NotEqual(before.Context.Text("dsvm/lock/extra.txt"), after.Context.Text("dsvm/lock/extra.txt"));
        Assert.Equal("fonts-dejavu-core=2.37-8\njq=1.7.1-6\nlibjq1=1.7.1-6\n", after.Context.Text("dsvm/lock/extra.txt"));
    }

    [Fact]
    public void AddingAnExtraPackage_KeepsTheDockerfileIdenticalUpToTheToolsetLayer()
    {
        using var one = new DemoEnvironment();
        using var two = new DemoEnvironment(DemoEnvironment.SpecText.Replace(
            "packages: [fonts-dejavu-core]", "packages: [fonts-dejavu-core, jq]", StringComparison.Ordinal));

        var before = Dockerfile(Render(one));
        var after = Dockerfile(Render(two, [new("fonts-dejavu-core", "2.37-8"), new("jq", "1.7.1-6")]));

        const string ExtraLayer = "COPY dsvm/lock/extra.txt";
        Assert.Equal(before[..IndexOf(before, ExtraLayer)], after[..IndexOf(after, ExtraLayer)]);
    }

    // ---- lock files in the context ----

    [Fact]
    public void ToolsetsTxt_HoldsBaseAndToolsetPackages_WithTheToolsetVersionWinning()
    {
        using var env = new DemoEnvironment();

        var lines = Render(env).Context.Text("dsvm/lock/toolsets.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Contains("bash=5.2.37-2+b10", lines);
        Assert.DoesNotContain("bash=5.2.37-2", lines);
        Assert.Contains("apt=3.0.4", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("fonts-dejavu-core=", StringComparison.Ordinal));
    }

    [Fact]
    public void InstalledTxt_IsSortedLikeCLocaleSort()
    {
        using var env = new DemoEnvironment();

        var lines = Render(env).Context.Text("dsvm/lock/installed.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(lines.Order(StringComparer.Ordinal), lines);
        // '-' (0x2d) sorts before '=' (0x3d): byte order, not package-name order.
        Assert.True(
            Array.IndexOf(lines, "git-man=1:2.47.3-0+deb13u1") < Array.IndexOf(lines, "git=1:2.47.3-0+deb13u1"),
            string.Join('\n', lines));
    }

    [Fact]
    public void InstalledTxt_HoldsEveryPackageOnceWithTheFinalVersion()
    {
        using var env = new DemoEnvironment();

        var text = Render(env).Context.Text("dsvm/lock/installed.txt");

        Assert.Equal(
            [
                "apt=3.0.4", "bash=5.2.37-2+b10", "bsdutils=1:2.41.5-0+deb13u1", "fonts-dejavu-core=2.37-8",
                "git-man=1:2.47.3-0+deb13u1", "git=1:2.47.3-0+deb13u1", "jupyterlab=4.2.5-1", "python3=3.13.5-1",
                "tini=0.19.0-1",
            ],
            text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
    }

    // ---- Dockerfile ----

    [Fact]
    public void Dockerfile_InstallsToolsetsBeforeExtraBeforeCopyingSamples()
    {
        using var env = new DemoEnvironment();

        var d = Dockerfile(Render(env));

        var toolsets = IndexOf(d, "xargs -a /opt/dsvm/lock/toolsets.txt apt-get install");
        var extra = IndexOf(d, "xargs -a /opt/dsvm/lock/extra.txt apt-get install");
        var verify = IndexOf(d, "DSVM-LOCK-MISMATCH");
        var samples = IndexOf(d, "COPY samples/ /opt/dsvm/samples/");
        Assert.True(toolsets < extra, "toolsets before extra");
        Assert.True(extra < verify, "extra before the lock check");
        Assert.True(verify < samples, "lock check before samples");
    }

    [Fact]
    public void Dockerfile_PutsTheDpkgFilterInPlaceBeforeAnyPackageIsInstalled_AndChecksEveryPackageLayer()
    {
        using var env = new DemoEnvironment();

        var build = Render(env, [new LockedPackage("jq", "1.7.1-3")]);
        var d = Dockerfile(build);

        var filter = IndexOf(d, $"COPY {DpkgFilter.ContextPath} {DpkgFilter.ImagePath}\n");
        var toolsets = IndexOf(d, "xargs -a /opt/dsvm/lock/toolsets.txt apt-get install");
        Assert.True(filter < toolsets, "the filter is in place before the first apt-get install");
        Assert.Equal(DpkgFilter.Config, build.Context.Text(DpkgFilter.ContextPath));
        Assert.Contains("path-exclude=/usr/share/nodejs/*\n", DpkgFilter.Config, StringComparison.Ordinal);
        Assert.Contains("path-include=/usr/share/nodejs/bootstrap-sass/*\n", DpkgFilter.Config, StringComparison.Ordinal);
        // Both package layers (toolsets and the spec's own packages) end with the dangling-link check.
        Assert.Equal(2, d.Split(DpkgFilter.Marker).Length - 1);
    }

    [Fact]
    public void Dockerfile_StartsFromTheBaseImageOfTheLock()
    {
        using var env = new DemoEnvironment();

        var d = Dockerfile(Render(env));

        Assert.Contains("\nFROM dsvm-base/debian-trixie-main:0123456789abcdef\n", d, StringComparison.Ordinal);
    }

    [Fact]
    public void Dockerfile_EndsAsTheUnprivilegedUserWithTiniAsEntrypoint()
    {
        using var env = new DemoEnvironment();

        var lines = Dockerfile(Render(env)).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("ENTRYPOINT [\"/usr/bin/tini\", \"--\", \"/opt/dsvm/bin/dsvm-start\"]", lines[^1]);
        Assert.Contains("USER 65530:65530", lines);
        Assert.True(Array.IndexOf(lines, "USER 65530:65530") > Array.FindIndex(lines, l => l.StartsWith("COPY samples/", StringComparison.Ordinal)));
    }

    [Fact]
    public void Dockerfile_QuotesEnvValues()
    {
        using var env = new DemoEnvironment();

        var d = Dockerfile(Render(env));

        Assert.Contains("\nENV GREETING=\"say \\\"hi\\\"\" MPLBACKEND=\"Agg\"\n", d, StringComparison.Ordinal);
    }

    [Fact]
    public void Dockerfile_QuotesLabels_AndLabelsTheTag()
    {
        using var env = new DemoEnvironment();

        var build = Render(env);
        var d = Dockerfile(build);

        Assert.Contains("  io.opendsvm.description=\"Demo \\\"quoted\\\" environment\"", d, StringComparison.Ordinal);
        Assert.Contains("  io.opendsvm.environment=\"demo\"", d, StringComparison.Ordinal);
        Assert.Contains($"  io.opendsvm.tag=\"{build.Tag}\"", d, StringComparison.Ordinal);
        Assert.Contains("  io.opendsvm.kernels=\"python3\"", d, StringComparison.Ordinal);
    }

    [Fact]
    public void Dockerfile_WithoutExtraPackages_HasNoExtraLayer()
    {
        using var env = new DemoEnvironment(DemoEnvironment.SpecText.Replace(
            "packages: [fonts-dejavu-core]\n", "", StringComparison.Ordinal));

        var build = Render(env, []);

        Assert.DoesNotContain("extra.txt", Dockerfile(build), StringComparison.Ordinal);
        Assert.Equal("", build.Context.Text("dsvm/lock/extra.txt"));
    }

    [Fact]
    public void Dockerfile_CopiesFilesToTheirTargets()
    {
        using var env = new DemoEnvironment(DemoEnvironment.SpecText + """

            files:
              - source: data.csv
                target: /opt/data/data.csv
              - source: conf
                target: /etc/demo
            """);
        env.Write("data.csv", "a,b\n1,2\n");
        env.Write("conf/demo.conf", "x = 1\n");

        var build = Render(env);
        var d = Dockerfile(build);

        Assert.Contains("\nCOPY files/0 \"/opt/data/data.csv\"\n", d, StringComparison.Ordinal);
        Assert.Contains("\nCOPY files/1/ \"/etc/demo\"\n", d, StringComparison.Ordinal);
        Assert.Equal("x = 1\n", build.Context.Text("files/1/demo.conf"));
    }

    // ---- the rest of the context ----

    [Fact]
    public void Context_ShipsTheSamplesAndTheSelfCheck()
    {
        using var env = new DemoEnvironment();

        var build = Render(env);

        Assert.Equal("{\"cells\": []}", build.Context.Text("samples/hello.ipynb"));
        Assert.Equal(CheckScript.Render(build.Checks), build.Context.Text("dsvm/runtime/bin/dsvm-selfcheck"));
        Assert.True(build.Context.Files.Single(f => f.Path == "dsvm/runtime/bin/dsvm-selfcheck").Executable);
        Assert.Contains(build.Checks, c => c.Target == "/opt/dsvm/samples/hello.ipynb");
    }

    [Fact]
    public void Context_SkipsNotebookCheckpointsAndPycache()
    {
        using var env = new DemoEnvironment();
        env.Write("samples/.ipynb_checkpoints/hello-checkpoint.ipynb", "{}");
        env.Write("samples/__pycache__/x.pyc", "");

        var build = Render(env);

        Assert.DoesNotContain(build.Context.Files, f => f.Path.Contains("checkpoint", StringComparison.Ordinal));
        Assert.DoesNotContain(build.Context.Files, f => f.Path.Contains("__pycache__", StringComparison.Ordinal));
    }

    [Fact]
    public void BaseImageName_UsesComponentsAndTheFirstSixteenDigestDigits()
    {
        var b = new BaseLock
        {
            Distribution = "debian", Suite = "trixie", Components = ["main", "contrib", "non-free"],
            Mirror = BaseSpec.DefaultMirror, RootfsDigest = "sha256:8d9165d80751941f386f43732a47ce4898ef83326824ebeaf18fe81d14d284c7",
        };

        Assert.Equal("dsvm-base/debian-trixie-main-contrib-non-free:8d9165d80751941f", DockerfileRenderer.BaseImageName(b));
    }

    [Fact]
    public void TheRuntimeLayer_ShipsJupyterLabOverrides_ThatTurnOffTheNewsPrompt()
    {
        using var env = new DemoEnvironment();
        var build = Render(env);

        var overrides = System.Text.Json.JsonDocument.Parse(build.Context.Text("dsvm/runtime/jupyterlab/overrides.json")).RootElement;
        Assert.Equal("false", overrides.GetProperty("@jupyterlab/apputils-extension:notification").GetProperty("fetchNews").GetString());
        var dockerfile = Dockerfile(build);
        var copy = IndexOf(dockerfile, "COPY dsvm/runtime/jupyterlab/overrides.json /usr/share/jupyter/lab/settings/overrides.json\n");
        // With the other runtime files: after the packages, so a change to it rebuilds only the last layers.
        Assert.True(copy > IndexOf(dockerfile, "COPY dsvm/runtime/jupyter/ /etc/jupyter/"));
    }

    // ---- the entrypoint (run here with /bin/sh, as the image runs it) ----

    private static async Task<Dictionary<string, string>> StartScriptEnvironmentAsync(IReadOnlyDictionary<string, string> env)
    {
        var dir = Directory.CreateTempSubdirectory("dsvm-start-");
        try
        {
            var script = Path.Combine(dir.FullName, "dsvm-start");
            await File.WriteAllTextAsync(script, DockerfileRenderer.StartScript);
            var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add(script);
            psi.ArgumentList.Add("env");
            psi.Environment.Clear();
            psi.Environment["PATH"] = "/usr/bin:/bin";
            psi.Environment["HOME"] = dir.FullName;
            foreach (var (k, v) in env)
            {
                psi.Environment[k] = v;
            }

            using var process = System.Diagnostics.Process.Start(psi)!;
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.Equal(0, process.ExitCode);
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2)
                .ToDictionary(p => p[0], p => p[1]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static readonly string[] ThreadVariables =
        ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS", "MC_CORES"];

    [Fact]
    public async Task StartScript_SizesEveryThreadPoolFromDsvmCpus_KeepingWhatIsAlreadySet()
    {
        var env = await StartScriptEnvironmentAsync(new Dictionary<string, string> { ["DSVM_CPUS"] = "3", ["MKL_NUM_THREADS"] = "7" });

        Assert.All(ThreadVariables.Where(v => v != "MKL_NUM_THREADS"), v => Assert.Equal("3", env[v]));
        Assert.Equal("7", env["MKL_NUM_THREADS"]);
    }

    [Fact]
    public async Task StartScript_WithoutOrWithABadDsvmCpus_UsesTheCpusItHas()
    {
        var psi = new System.Diagnostics.ProcessStartInfo("nproc") { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var nproc = (await p.StandardOutput.ReadToEndAsync()).Trim();
        await p.WaitForExitAsync();
        foreach (var bad in new[] { "", "0", "2; rm -rf /", "-1", "x" })
        {
            var env = await StartScriptEnvironmentAsync(new Dictionary<string, string> { ["DSVM_CPUS"] = bad });
            Assert.All(ThreadVariables, v => Assert.Equal(nproc, env[v]));
        }
    }

    [Fact]
    public async Task StartScript_LiftsPep668ForTheUserAndPutsUserBinsOnPath()
    {
        var env = await StartScriptEnvironmentAsync(new Dictionary<string, string>());

        Assert.Equal("1", env["PIP_BREAK_SYSTEM_PACKAGES"]);
        Assert.StartsWith(env["HOME"] + "/.local/bin:", env["PATH"], StringComparison.Ordinal);
    }

    [Fact]
    public void ExecSetsTheSameThreadVariablesAsTheEntrypoint()
    {
        var list = "for v in " + string.Join(' ', Dsvm.Core.Workspaces.WorkspaceVariables.ThreadVariables) + "; do";
        Assert.Contains(list, DockerfileRenderer.StartScript, StringComparison.Ordinal);
        Assert.Contains(list, Dsvm.Core.Workspaces.WorkspaceVariables.ExecPrelude, StringComparison.Ordinal);
        // pip's opt-out and ~/.local/bin exactly as the entrypoint writes them.
        foreach (var line in new[]
        {
            "export PIP_BREAK_SYSTEM_PACKAGES=\"${PIP_BREAK_SYSTEM_PACKAGES:-1}\"",
            "case \":$PATH:\" in *\":$HOME/.local/bin:\"*) ;; *) export PATH=\"$HOME/.local/bin:$PATH\" ;; esac",
        })
        {
            Assert.Contains(line, DockerfileRenderer.StartScript, StringComparison.Ordinal);
            Assert.Contains(line, Dsvm.Core.Workspaces.WorkspaceVariables.ExecPrelude, StringComparison.Ordinal);
        }

        Assert.Equal(["/bin/sh", "-c", Dsvm.Core.Workspaces.WorkspaceVariables.ExecPrelude, "dsvm-exec", "a b", "$x"],
            Dsvm.Core.Workspaces.WorkspaceVariables.WrapExec(["a b", "$x"]));
    }
}
