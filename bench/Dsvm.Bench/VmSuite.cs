using System.Diagnostics;
using System.Security.Cryptography;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Images;
using Dsvm.Images.Vm;
using Dsvm.Qemu;

namespace Dsvm.Bench;

/// <summary>One VM measurement in seconds (null: did not run; the note says why).</summary>
internal sealed record VmRow(string Step, double? Seconds, string Detail, string? Note = null);

internal sealed record VmSuiteResult(string Accelerator, List<VmRow> Rows, List<string> Notes);

/// <summary>
/// VM disks and the qemu backend with the built <c>minimal</c> image: a fresh <c>dsvm env export</c> (the guest layer
/// from the engine's cache when present, the disk itself always made again), then a VM booted on it until Jupyter
/// answers <c>/api/status</c>, its ACPI power-down, and a second boot on the same home.
/// </summary>
internal sealed class VmSuite(BenchOptions options, BenchHome home, ImageServices images)
{
    private const string Image = "dsvm/minimal:latest";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    public async Task<VmSuiteResult> RunAsync(CancellationToken ct)
    {
        _ = options;
        var rows = new List<VmRow>();
        var notes = new List<string>();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), home.Paths, images);
        var (accel, accelDetail) = await backend.AcceleratorAsync(ct);
        if (!await images.Docker.ImageExistsAsync(Image, ct))
        {
            notes.Add($"{Image} is not built: run `dsvm env build minimal` (or bench --suite build) first");
            return new VmSuiteResult(accelDetail, rows, notes);
        }

        var exporter = new DiskExporter(images.Docker, images.Paths);
        var sw = Stopwatch.StartNew();
        Log.Say("vm suite: exporting minimal to qcow2");
        var disk = await exporter.ExportAsync(Image, new DiskExportOptions { Format = DiskFormat.Qcow2 }, m => Log.Say("  " + m), ct);
        rows.Add(new VmRow("export minimal → qcow2", sw.Elapsed.TotalSeconds,
            $"{disk.FileBytes / (1 << 20)} MiB file, {disk.VirtualBytes / (1 << 20)} MiB virtual, kernel {disk.Kernel}"));

        var id = "bench-vm-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
        var request = new WorkspaceStartRequest
        {
            Id = id, Name = "vmbench", Owner = "bench", Image = Image, Size = new MachineSize("small", 1, 2, 0, SizeClass.General),
            Token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), HomeVolume = $"dsvm-home-{id}", BaseUrl = "/user/bench/vmbench/",
        };
        var probe = new HttpReadinessProbe(Http);
        WorkspaceHandle? handle = null;
        try
        {
            // The base disk of the backend is cached by image tag: made here once, outside the boot timing.
            await backend.EnsureBaseDiskAsync(Image, m => Log.Say("  " + m), ct);
            foreach (var boot in new[] { "first boot (new home disk formatted)", "second boot (same home)" })
            {
                Log.Say($"vm suite: {boot}");
                sw.Restart();
                var launch = await backend.StartAsync(request, null, ct);
                handle = launch.Handle;
                var ready = false;
                while (sw.Elapsed < TimeSpan.FromMinutes(10) && !ready)
                {
                    ready = await probe.IsReadyAsync(launch.Endpoint, request.BaseUrl, request.Token, ct);
                    if (!ready)
                    {
                        await Task.Delay(500, ct);
                    }
                }

                rows.Add(new VmRow($"boot to Jupyter: {boot}", ready ? sw.Elapsed.TotalSeconds : null, $"1 vCPU, 2 GiB, {accel.ToUpperInvariant()}",
                    ready ? null : "not ready within 10 min"));
                sw.Restart();
                await backend.StopAsync(launch.Handle, ct);
                rows.Add(new VmRow("stop (ACPI power-down via QMP)", sw.Elapsed.TotalSeconds, ""));
            }
        }
        finally
        {
            if (handle is not null)
            {
                await backend.DeleteAsync(handle, request.HomeVolume, keepHome: false, CancellationToken.None);
            }

            File.Delete(disk.Path);
            File.Delete(disk.Path + ".json");
        }

        return new VmSuiteResult(accelDetail, rows, notes);
    }
}
