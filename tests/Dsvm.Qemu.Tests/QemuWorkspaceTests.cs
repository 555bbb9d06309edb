using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Images.Vm;
using Dsvm.Testing;
using Xunit.Abstractions;

namespace Dsvm.Qemu.Tests;

/// <summary>
/// The exported <c>minimal</c> disk, made once per test run and cached by image tag in the shared test home
/// (<c>DATA/vms/base</c>): every VM test boots overlays on it.
/// </summary>
public static class VmStack
{
    public const string Owner = "vmit";

    public static QemuWorkspaceBackend Backend { get; } = new(new QemuBackendOptions { StopTimeout = TimeSpan.FromSeconds(90) }, TestEnvironment.Paths, BuiltEnvironment.Services);

    private static readonly Lazy<Task<(string Image, string Disk)>> Base = new(async () =>
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        var disk = await Backend.EnsureBaseDiskAsync(record.Image, m => Console.Error.WriteLine($"[vm-tests] {m}"), CancellationToken.None);
        return (record.Image, disk);
    });

    public static DsvmPaths Paths => TestEnvironment.Paths;

    public static Task<(string Image, string Disk)> BaseDiskAsync() => Base.Value;

    /// <summary>Under TCG on a shared 2-core machine a boot takes minutes.</summary>
    public static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(10);

    public static WorkspaceManager Manager(IWorkspaceStore store) =>
        new(Backend, store, SizeCatalog.Load(null), new NoGpus(), new HttpReadinessProbe(HttpReadinessProbe.CreateClient()), Paths,
            TimeProvider.System, new WorkspaceOptions { StartTimeout = BootTimeout, PollInterval = TimeSpan.FromSeconds(1) });

    /// <summary>Why VM tests cannot run here (no Docker or no qemu), or null; under test.sh a missing tool fails.</summary>
    public static string? SkipReason =>
        TestEnvironment.DockerSkipReason
        ?? (HostTools.Missing([.. DiskExporter.Tools(DiskFormat.Qcow2), "qemu-system-x86_64"], needMbr: true) is { } why
            && Environment.GetEnvironmentVariable("DSVM_REQUIRE_DOCKER") != "1"
                ? why
                : null);

    private sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }
}

/// <summary>A test that boots VMs: skipped with a visible reason outside test.sh when Docker or qemu is missing.</summary>
public sealed class VmFactAttribute : FactAttribute
{
    public VmFactAttribute()
    {
        if (VmStack.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

[Trait("Requires", "Docker")]
[Trait("Requires", "qemu")]
[Collection("vm")]
public sealed class DiskExportTests
{
    [VmFact]
    public async Task The_exported_disk_is_an_mbr_disk_with_syslinux_a_bootable_fat_partition_and_an_ext4_root()
    {
        var (image, disk) = await VmStack.BaseDiskAsync();
        var record = JsonSerializer.Deserialize<DiskExport>(await File.ReadAllTextAsync(disk + ".json"), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(image, record.Image);
        Assert.Equal(DiskFormat.Qcow2, record.Format);
        Assert.StartsWith("dsvm-vm/minimal:", record.VmImage, StringComparison.Ordinal);
        Assert.Contains("QFI\u00fb", Encoding.Latin1.GetString(File.ReadAllBytes(disk).AsSpan(0, 4)), StringComparison.Ordinal);

        // The first MiB as raw: syslinux's MBR code and the partition table.
        using var tmp = new TempDir();
        var head = Path.Combine(tmp.Path, "head.raw");
        await HostTools.RunAsync("qemu-img", ["dd", "-f", "qcow2", "-O", "raw", "bs=1M", "count=1", $"if={disk}", $"of={head}"], default);
        var mbr = await File.ReadAllBytesAsync(head);
        var syslinux = await File.ReadAllBytesAsync(HostTools.MbrPath);
        Assert.True(mbr.AsSpan(0, syslinux.Length).SequenceEqual(syslinux.AsSpan(0, Math.Min(syslinux.Length, 440))), "MBR boot code is not syslinux's mbr.bin");
        Assert.Equal(0x55, mbr[510]);
        Assert.Equal(0xAA, mbr[511]);
        Assert.Equal(0x80, mbr[446]); // partition 1: bootable
        Assert.Equal(0x0E, mbr[446 + 4]); // FAT16 LBA
        Assert.Equal(2048u, BitConverter.ToUInt32(mbr, 446 + 8));
        Assert.Equal(0x83, mbr[462 + 4]); // partition 2: Linux
        Assert.Equal((ulong)record.VirtualBytes, JsonDocument.Parse(await HostTools.RunAsync("qemu-img", ["info", "--output=json", disk], default))
            .RootElement.GetProperty("virtual-size").GetUInt64());
    }

    [VmFact]
    public async Task Exporting_an_environment_that_was_never_built_says_to_build_it()
    {
        var exporter = new DiskExporter(BuiltEnvironment.Services.Docker, VmStack.Paths);
        var ex = await Assert.ThrowsAsync<NotFoundException>(() =>
            exporter.ExportAsync("dsvm/never-built-env:latest", new DiskExportOptions(), null, default));
        Assert.Equal("environment image 'dsvm/never-built-env:latest' is not built: run `dsvm env build never-built-env` first", ex.Message);
    }
}

/// <summary>One workspace VM through the real WorkspaceManager: up, a file in the home, resize, delete.</summary>
[Trait("Requires", "Docker")]
[Trait("Requires", "qemu")]
[Collection("vm")]
public sealed class QemuWorkspaceTests(ITestOutputHelper output)
{
    private const string Name = "vm1";

    private static HttpRequestMessage Request(HttpMethod method, Workspace w, string api, string? body = null)
    {
        var request = new HttpRequestMessage(method, new Uri(new Uri(w.Endpoint!), w.BaseUrl.TrimStart('/') + api));
        request.Headers.Authorization = new AuthenticationHeaderValue("token", w.Token);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return request;
    }

    private static async Task<string> ConsoleAsync(Workspace w) => await VmStack.Backend.GetLogsAsync(w.Handle, 400, default);

    [VmFact]
    public async Task A_vm_workspace_boots_to_jupyter_keeps_its_home_across_a_resize_and_is_deleted_with_or_without_its_home()
    {
        var (image, _) = await VmStack.BaseDiskAsync();
        var store = new SqliteWorkspaceStore(VmStack.Paths.Database);
        var manager = VmStack.Manager(store);
        var http = HttpReadinessProbe.CreateClient();
        await CleanupAsync(manager);
        var progress = new Progress<WorkspaceProgress>(p => output.WriteLine(p.Message));
        Workspace? w = null;
        try
        {
            var started = DateTimeOffset.UtcNow;
            w = await manager.UpAsync(new CreateWorkspaceRequest
            {
                Name = Name, Owner = VmStack.Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = image, Size = "medium", GpuMode = GpuMode.None,
            }, progress, default);
            output.WriteLine($"up in {(DateTimeOffset.UtcNow - started).TotalSeconds:F0} s ({(await VmStack.Backend.AcceleratorAsync(default)).Detail})");
            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.StartsWith("http://127.0.0.1:", w.Endpoint, StringComparison.Ordinal);
            var console = await ConsoleAsync(w);
            Assert.Contains("dsvm-config: formatting the new home disk", console, StringComparison.Ordinal);
            Assert.Contains("nproc=2 ", console, StringComparison.Ordinal);
            Assert.Contains($"hostname={Name}", console, StringComparison.Ordinal);

            // The token is required.
            using (var anonymous = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(w.Endpoint!), w.BaseUrl.TrimStart('/') + "api/contents")))
            using (var denied = await http.SendAsync(anonymous))
            {
                Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            }

            // A file in the home, through Jupyter's contents API.
            var body = JsonSerializer.Serialize(new { type = "file", format = "text", content = "kept across resizes\n" });
            using (var put = await http.SendAsync(Request(HttpMethod.Put, w, "api/contents/notes.txt", body)))
            {
                Assert.True(put.IsSuccessStatusCode, $"PUT notes.txt: {(int)put.StatusCode} {await put.Content.ReadAsStringAsync()}");
            }

            // A guest kernel panic (an NMI from outside, as a cloud console's "diagnostic interrupt" sends) reboots the
            // guest after 5 s (panic=5): the same VM, its port and token, answers again with the home as it was. (The
            // CI run of 2026-12-07 waited 900 s on a guest that panicked 4 s into its boot under TCG and hung.)
            started = DateTimeOffset.UtcNow;
            await QmpClient.ExecuteAsync(QemuWorkspaceBackend.QmpPath(VmStack.Backend.VmDir(w.Id)), "inject-nmi", default);
            var probe = new HttpReadinessProbe(http);
            var current = w;
            await Wait.UntilAsync(async () => (await ConsoleAsync(current)).Contains("Kernel panic - not syncing: NMI", StringComparison.Ordinal),
                TimeSpan.FromMinutes(1), () => "the guest did not panic on the NMI", default);
            await Wait.UntilAsync(() => probe.IsReadyAsync(new Uri(current.Endpoint!), current.BaseUrl, current.Token, default),
                VmStack.BootTimeout, () => "Jupyter did not answer again after the guest's panic", default);
            output.WriteLine($"panicked, rebooted and answering again in {(DateTimeOffset.UtcNow - started).TotalSeconds:F0} s");
            var afterPanic = await VmStack.Backend.GetStatusAsync(w.Handle, default);
            Assert.EndsWith("; the guest kernel panicked once and rebooted (see its log)", afterPanic.Detail, StringComparison.Ordinal);
            Assert.Equal(WorkspaceState.Running, (await manager.GetAsync(VmStack.Owner, Name, default)).State);
            using (var get = await http.SendAsync(Request(HttpMethod.Get, w, "api/contents/notes.txt?type=file&format=text")))
            {
                Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            }

            // Resize: stop (ACPI power-down) and start with 1 vCPU on a fresh system overlay, the same home disk.
            // (Up with 2 vCPUs first: under TCG each vCPU is a host thread, so the first boot, which formats the home, is faster.)
            started = DateTimeOffset.UtcNow;
            w = await manager.ResizeAsync(VmStack.Owner, Name, "small", GpuMode.None, progress, default);
            output.WriteLine($"resized in {(DateTimeOffset.UtcNow - started).TotalSeconds:F0} s");
            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.Equal("small", w.Size);
            console = await ConsoleAsync(w);
            Assert.DoesNotContain("formatting the new home disk", console, StringComparison.Ordinal);
            Assert.Contains("nproc=1 ", console, StringComparison.Ordinal);
            var status = await VmStack.Backend.GetStatusAsync(w.Handle, default);
            Assert.StartsWith("running (1 vCPU, 2048 MiB", status.Detail, StringComparison.Ordinal);
            using (var get = await http.SendAsync(Request(HttpMethod.Get, w, "api/contents/notes.txt?type=file&format=text")))
            {
                Assert.Equal(HttpStatusCode.OK, get.StatusCode);
                using var doc = JsonDocument.Parse(await get.Content.ReadAsStringAsync());
                Assert.Equal("kept across resizes\n", doc.RootElement.GetProperty("content").GetString());
            }

            var listed = await VmStack.Backend.ListManagedAsync(default).ToListAsync();
            Assert.Contains(listed, r => r.WorkspaceId == w.Id && r.Running
                && r.Labels.GetValueOrDefault(WorkspaceLabels.Name) == Name && r.Labels.GetValueOrDefault(WorkspaceLabels.Owner) == VmStack.Owner);

            // Delete keeping the home: the VM goes, the home disk stays.
            var handle = w.Handle;
            await manager.DeleteAsync(VmStack.Owner, Name, deleteHome: false, progress, default);
            Assert.False((await VmStack.Backend.GetStatusAsync(handle, default)).Exists);
            Assert.True(await VmStack.Backend.HomeExistsAsync(w.HomeVolume, default));
            Assert.DoesNotContain(await VmStack.Backend.ListManagedAsync(default).ToListAsync(), r => r.WorkspaceId == w.Id);

            // Then deleting the home too.
            await VmStack.Backend.DeleteAsync(handle, w.HomeVolume, keepHome: false, default);
            Assert.False(await VmStack.Backend.HomeExistsAsync(w.HomeVolume, default));
            w = null;
        }
        catch
        {
            if (w is not null)
            {
                output.WriteLine("serial console:\n" + await ConsoleAsync(w));
            }

            throw;
        }
        finally
        {
            await CleanupAsync(manager);
        }
    }

    private static async Task CleanupAsync(WorkspaceManager manager)
    {
        try
        {
            await manager.DeleteAsync(VmStack.Owner, Name, deleteHome: true, null, default);
        }
        catch (NotFoundException)
        {
        }

        var home = VmStack.Backend.HomeDisk($"dsvm-home-{VmStack.Owner}-{Name}");
        if (File.Exists(home))
        {
            File.Delete(home);
        }
    }
}
