using System.Globalization;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core.Workspaces;

namespace Dsvm.Docker;

/// <summary>Finds NVIDIA GPUs with <c>nvidia-smi</c>; no tool or no driver means no GPU (never an error).</summary>
public sealed class NvidiaGpuDetector(string executable = "nvidia-smi") : IGpuDetector
{
    private IReadOnlyList<GpuInfo>? _cached;

    public async Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct)
    {
        if (_cached is not null)
        {
            return _cached;
        }

        try
        {
            var r = await Cli.Wrap(executable)
                .WithArguments(["--query-gpu=index,name,uuid,memory.total,driver_version", "--format=csv,noheader,nounits"])
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(ct);
            _cached = r.ExitCode == 0 ? Parse(r.StandardOutput) : [];
        }
        catch (System.ComponentModel.Win32Exception)
        {
            _cached = [];
        }

        return _cached;
    }

    /// <summary>Parses <c>0, NVIDIA H100 80GB HBM3, GPU-uuid, 81559, 550.163.01</c> lines.</summary>
    public static IReadOnlyList<GpuInfo> Parse(string csv) =>
        csv.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(',', StringSplitOptions.TrimEntries))
            .Where(f => f.Length >= 5 && int.TryParse(f[0], CultureInfo.InvariantCulture, out _))
            .Select(f => new GpuInfo(int.Parse(f[0], CultureInfo.InvariantCulture), f[1], f[2],
                long.TryParse(f[3], CultureInfo.InvariantCulture, out var m) ? m : 0, f[4]))
            .ToList();
}
