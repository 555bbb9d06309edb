using System.Diagnostics;

namespace Dsvm.Core;

/// <summary>
/// Named steps of the workspace lifecycle where the fault-injection tests make the process die. Set
/// <c>DSVM_FAULT=&lt;step&gt;[:kill|:throw|:pause]</c>: <c>kill</c> (the default) ends the process at once with SIGKILL, as
/// an OOM kill or a power cut would; <c>throw</c> throws <see cref="FaultInjectedException"/>; <c>pause</c> creates the
/// file named by <c>DSVM_FAULT_PAUSE</c> and waits there until the test deletes it (the engine-fault tests stop the
/// engine meanwhile). Unset: does nothing.
/// </summary>
public static class FaultPoints
{
    /// <summary>Read once: the variable is for test processes, never changed at run time.</summary>
    private static readonly (string Step, string Mode)? Configured = Parse(System.Environment.GetEnvironmentVariable("DSVM_FAULT"));

    public static (string Step, string Mode)? Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        var parts = value.Split(':', 2);
        return (parts[0], parts.Length < 2 || parts[1] is not ("throw" or "pause") ? "kill" : parts[1]);
    }

    /// <summary>Dies here when <c>DSVM_FAULT</c> names <paramref name="step"/>.</summary>
    public static void Hit(string step)
    {
        if (Configured is not { } fault || fault.Step != step)
        {
            return;
        }

        if (fault.Mode == "throw")
        {
            throw new FaultInjectedException(step);
        }

        if (fault.Mode == "pause" && System.Environment.GetEnvironmentVariable("DSVM_FAULT_PAUSE") is { Length: > 0 } marker)
        {
            File.WriteAllText(marker, step);
            Console.Error.WriteLine($"DSVM_FAULT: paused at {step} until {marker} is deleted");
            while (File.Exists(marker))
            {
                Thread.Sleep(50);
            }

            return;
        }

        Console.Error.WriteLine($"DSVM_FAULT: killed at {step}");
        Console.Error.Flush();
        Process.GetCurrentProcess().Kill();
        // Kill is asynchronous: never go on past the step.
        Thread.Sleep(Timeout.Infinite);
    }
}

/// <summary>Thrown at a fault point configured with <c>:throw</c>.</summary>
public sealed class FaultInjectedException(string step) : DsvmException($"fault injected at {step} (DSVM_FAULT)")
{
    public override string Kind => "fault";
}
