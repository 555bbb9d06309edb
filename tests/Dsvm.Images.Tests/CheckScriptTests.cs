using System.Text.RegularExpressions;
using Dsvm.Core.Checks;

namespace Dsvm.Images.Tests;

public sealed class CheckScriptTests
{
    private static readonly CheckDefinition[] Checks =
    [
        new("command:tini --version", CheckKind.Command, "tini --version"),
        new("python:numpy", CheckKind.PythonImport, "numpy"),
        new("r:IRkernel", CheckKind.RLibrary, "IRkernel"),
        new("kernel:python3", CheckKind.Kernel, "python3"),
        new("notebook:/opt/dsvm/samples/hello.ipynb", CheckKind.Notebook, "/opt/dsvm/samples/hello.ipynb"),
    ];

    private static string[] RunLines(string script) =>
        script.Split('\n').Where(l => Regex.IsMatch(l, @"^run \d+ ")).ToArray();

    // ---- Render ----

    [Fact]
    public void Render_HasOneRunLinePerCheck_InOrder()
    {
        var lines = RunLines(CheckScript.Render(Checks));

        Assert.Equal(
            [
                "run 0 bash -c 'tini --version'",
                "run 1 py_import 'numpy'",
                "run 2 r_library 'IRkernel'",
                "run 3 kernel 'python3'",
                "run 4 notebook '/opt/dsvm/samples/hello.ipynb'",
            ],
            lines);
    }

    [Fact]
    public void Render_QuotesASingleQuoteInATargetSafely()
    {
        var script = CheckScript.Render([new("command:x", CheckKind.Command, "echo 'it works'; echo $HOME")]);

        Assert.Equal(["""run 0 bash -c 'echo '\''it works'\''; echo $HOME'"""], RunLines(script));
    }

    [Fact]
    public void Render_IsABashScriptThatExitsNonZeroOnFailure()
    {
        var script = CheckScript.Render(Checks);

        Assert.StartsWith("#!/bin/bash\n", script, StringComparison.Ordinal);
        Assert.EndsWith("exit $(( failed > 0 ? 1 : 0 ))\n", script, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_WithNoChecks_HasNoRunLines() =>
        Assert.Empty(RunLines(CheckScript.Render([])));

    [Fact]
    public void ShQuote_WrapsInSingleQuotes() =>
        Assert.Equal("""'a b'\''c'""", Sh.Quote("a b'c"));

    // ---- Parse ----

    [Fact]
    public void Parse_Success_DetailIsTheLastOutputLine()
    {
        var output = "@@dsvm-begin 0\nsome warning\n2.2.4\n\n@@dsvm-end 0 0 250\n";

        var result = Assert.Single(CheckScript.Parse([Checks[1]], output));

        Assert.True(result.Passed);
        Assert.Equal("2.2.4", result.Detail);
        Assert.Equal("python:numpy", result.Id);
        Assert.Equal(CheckKind.PythonImport, result.Kind);
    }

    [Fact]
    public void Parse_SuccessWithoutOutput_IsOk()
    {
        var result = Assert.Single(CheckScript.Parse([Checks[0]], "@@dsvm-begin 0\n\n@@dsvm-end 0 0 5\n"));

        Assert.True(result.Passed);
        Assert.Equal("ok", result.Detail);
    }

    [Fact]
    public void Parse_Failure_DetailHasTheExitCodeAndTheTail()
    {
        var output = string.Join('\n',
            "@@dsvm-begin 0",
            "Traceback (most recent call last):",
            "ModuleNotFoundError: No module named 'numpy'",
            "",
            "@@dsvm-end 0 1 80");

        var result = Assert.Single(CheckScript.Parse([Checks[1]], output));

        Assert.False(result.Passed);
        Assert.Equal("exit code 1: Traceback (most recent call last):\nModuleNotFoundError: No module named 'numpy'", result.Detail);
    }

    [Fact]
    public void Parse_Failure_KeepsOnlyTheLastTwelveLines()
    {
        var body = Enumerable.Range(1, 20).Select(i => $"line {i}");
        var output = "@@dsvm-begin 0\n" + string.Join('\n', body) + "\n@@dsvm-end 0 2 10\n";

        var result = Assert.Single(CheckScript.Parse([Checks[0]], output));

        Assert.StartsWith("exit code 2: line 9\n", result.Detail, StringComparison.Ordinal);
        Assert.EndsWith("\nline 20", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_CheckWithoutEndMarker_DidNotFinish()
    {
        var output = "@@dsvm-begin 0\nv0.19.0\n@@dsvm-end 0 0 3\n@@dsvm-begin 1\nimporting...\n";

        var results = CheckScript.Parse(Checks[..2], output);

        Assert.True(results[0].Passed);
        Assert.False(results[1].Passed);
        Assert.Equal("did not finish: importing...", results[1].Detail);
    }

    [Fact]
    public void Parse_CheckThatNeverStarted_DidNotRun()
    {
        var results = CheckScript.Parse(Checks, "@@dsvm-begin 0\nv0.19.0\n@@dsvm-end 0 0 3\n");

        Assert.All(results.Skip(1), r =>
        {
            Assert.False(r.Passed);
            Assert.StartsWith("did not run", r.Detail, StringComparison.Ordinal);
            Assert.Equal(0, r.Seconds);
        });
    }

    [Fact]
    public void Parse_ReadsTheDurationInMilliseconds()
    {
        var result = Assert.Single(CheckScript.Parse([Checks[0]], "@@dsvm-begin 0\nok\n@@dsvm-end 0 0 1500\n"));

        Assert.Equal(1.5, result.Seconds, 3);
    }

    [Fact]
    public void Parse_HandlesCrLfLineEnds()
    {
        var result = Assert.Single(CheckScript.Parse([Checks[0]], "@@dsvm-begin 0\r\ntini version 0.19.0\r\n@@dsvm-end 0 0 12\r\n"));

        Assert.True(result.Passed);
        Assert.Equal("tini version 0.19.0", result.Detail);
        Assert.Equal(0.012, result.Seconds, 3);
    }

    [Fact]
    public void Parse_TruncatesALongSuccessDetail()
    {
        var output = "@@dsvm-begin 0\n" + new string('x', 500) + "\n@@dsvm-end 0 0 1\n";

        var result = Assert.Single(CheckScript.Parse([Checks[0]], output));

        Assert.Equal(201, result.Detail.Length);
        Assert.EndsWith("…", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_IgnoresOutputOutsideMarkers()
    {
        var output = "container noise\n@@dsvm-begin 0\n3.13.5\n@@dsvm-end 0 0 7\ntrailing noise\n";

        var result = Assert.Single(CheckScript.Parse([Checks[0]], output));

        Assert.Equal("3.13.5", result.Detail);
    }
}
