using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Images;
using Dsvm.Images.Vm;

namespace Dsvm.Qemu;

/// <summary>Settings of the qemu backend.</summary>
public sealed record QemuBackendOptions
{
    public string QemuBinary { get; init; } = "qemu-system-x86_64";

    /// <summary><c>auto</c> (KVM when a probe VM runs on it, else TCG), <c>kvm</c> or <c>tcg</c>.</summary>
    public string Accelerator { get; init; } = "auto";

    /// <summary>Virtual size of a new home disk (qemu-img syntax); it grows on use.</summary>
    public string HomeSize { get; init; } = "20G";

    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary>How long an ACPI power-down may take before the VM is killed.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long qemu's QMP socket may leave a request unanswered (a hung or frozen qemu accepts and never answers)
    /// before a stop goes on to the signals.
    /// </summary>
    public TimeSpan QmpTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where VMs, homes and base disks live; by default <c>DATA/vms</c>.</summary>
    public string? StateFolder { get; init; }

    /// <summary>A start (boot to Jupyter answering) may take this long: minutes under TCG emulation.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromMinutes(15);
}


/// <summary>What the backend keeps about one VM (<c>vms/ID/vm.json</c>).</summary>
internal sealed record VmRecord
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Owner { get; init; }
    public required string Image { get; init; }
    public required string HomeVolume { get; init; }
    public required int Port { get; init; }
    public required int Vcpus { get; init; }
    public required long MemoryMiB { get; init; }
    public required string Accelerator { get; init; }
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>The start request's labels (owner, name, environment, size, image, home): none in records of before.</summary>
    public Dictionary<string, string>? Labels { get; init; }
}

/// <summary>
/// Workspaces as qemu VMs: the size's vCPUs and memory, a copy-on-write overlay on the environment's exported disk
/// (recreated at every start, like the Docker backend's disposable container), a persistent qcow2 home disk named
/// after the home volume, a config drive with the token, user, hostname and base URL, and Jupyter forwarded to a
/// free loopback port. qemu runs daemonized with a pidfile and a QMP socket.
/// </summary>
public sealed partial class QemuWorkspaceBackend : IWorkspaceBackend, IDescribableBackend
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    private readonly QemuBackendOptions _options;
    private readonly IDiskExporter _exporter;
    private readonly TimeProvider _time;
    private Task<(string Accel, string Detail)>? _accel;

    public QemuWorkspaceBackend(QemuBackendOptions options, DsvmPaths paths, IDiskExporter exporter, TimeProvider? time = null)
    {
        _options = options;
        _exporter = exporter;
        _time = time ?? TimeProvider.System;
        Root = options.StateFolder ?? Path.Combine(paths.Data, "vms");
    }

    public QemuWorkspaceBackend(QemuBackendOptions options, DsvmPaths paths, ImageServices images, TimeProvider? time = null)
        : this(options, paths, new DiskExporter(images.Docker, images.Paths), time) { }

    public string Name => "qemu";

    public TimeSpan? MinimumStartTimeout => _options.StartTimeout;

    /// <summary>The state folder: one folder per VM, <c>homes/</c> and <c>base/</c>.</summary>
    public string Root { get; }

    internal string VmDir(string id) => Path.Combine(Root, id);

    public string HomeDisk(string homeVolume) => Path.Combine(Root, "homes", homeVolume + ".qcow2");

    private static string Safe(string image) => UnsafeChars().Replace(image, "_");

    /// <summary>The exported base disk of an image, made once and cached by image tag (minutes under TCG: do it ahead).</summary>
    public async Task<string> EnsureBaseDiskAsync(string image, Action<string>? log, CancellationToken ct)
    {
        var disk = Path.Combine(Root, "base", Safe(image) + ".qcow2");
        await using var gate = await FileGate.AcquireAsync(disk + ".lock", ct, () => log?.Invoke("waiting for another export of this image"));
        var result = await _exporter.ExportAsync(image, new DiskExportOptions { Format = DiskFormat.Qcow2, Output = disk, Reuse = true }, log, ct);
        return result.Path;
    }

    public async Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        HostTools.Require([_options.QemuBinary, "qemu-img", "mkfs.fat", "mcopy"]);
        string baseDisk;
        try
        {
            baseDisk = await EnsureBaseDiskAsync(request.Image, m => progress?.Report(new WorkspaceProgress(m)), ct);
        }
        catch (NotFoundException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Image, ex.Message);
        }
        catch (DsvmException ex) when (ex is not WorkspaceStartException and not EnvironmentNotReadyException)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Image, $"the VM disk of {request.Image} could not be made: {ex.Message}");
        }

        var dir = VmDir(request.Id);
        Directory.CreateDirectory(dir);
        // A VM left by a crash or a killed command: the home is separate, so it is safe to replace.
        await KillAsync(dir, ct);

        var home = HomeDisk(request.HomeVolume);
        if (!File.Exists(home))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(home)!);
            progress?.Report(new WorkspaceProgress($"creating the home disk {request.HomeVolume} ({_options.HomeSize})"));
            await QemuImgAsync(["create", "-q", "-f", "qcow2", home + ".tmp", _options.HomeSize], ct);
            File.Move(home + ".tmp", home);
        }

        var overlay = Path.Combine(dir, "system.qcow2");
        File.Delete(overlay);
        await QemuImgAsync(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", baseDisk, overlay], ct);

        var configDrive = Path.Combine(dir, "config.img");
        await ConfigDrive.WriteAsync(configDrive, ConfigFor(request, _time.GetUtcNow()), ct);

        var (accel, _) = await AcceleratorAsync(ct);
        var port = FreePort(_options.BindAddress);
        var spec = LaunchSpec(request, dir, overlay, home, configDrive, accel, port);
        var console = spec.ConsoleLog;
        File.Delete(console);
        File.Delete(spec.PidFile);
        progress?.Report(new WorkspaceProgress($"booting a {spec.Vcpus}-vCPU {spec.MemoryMiB} MiB VM ({accel.ToUpperInvariant()})"));
        var run = await Cli.Wrap(QemuPath()).WithArguments(QemuArguments.Build(spec))
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        if (run.ExitCode != 0)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend,
                $"qemu did not start (exit {run.ExitCode}): {string.Join(' ', (run.StandardError + run.StandardOutput).Trim().Split('\n').TakeLast(3))}");
        }

        var record = new VmRecord
        {
            Id = request.Id, Name = WorkspaceIds.ObjectName(request.Id), Owner = request.Owner, Image = request.Image,
            HomeVolume = request.HomeVolume, Port = port, Vcpus = spec.Vcpus, MemoryMiB = spec.MemoryMiB, Accelerator = accel,
            StartedAt = _time.GetUtcNow(),
            Labels = new Dictionary<string, string>(request.Labels, StringComparer.Ordinal),
        };
        await File.WriteAllTextAsync(Path.Combine(dir, "vm.json"), JsonSerializer.Serialize(record, Json), ct);
        return new WorkspaceLaunch(HandleFor(record), Endpoint(port));
    }

    internal static VmConfig ConfigFor(WorkspaceStartRequest request, DateTimeOffset now) => new()
    {
        InstanceId = $"{request.Id}-{now.ToUnixTimeSeconds()}",
        Hostname = request.Name,
        Token = request.Token,
        BaseUrl = request.BaseUrl,
        User = UserPattern().IsMatch(request.Owner) ? request.Owner : DockerfileRenderer.UserName,
        HomeDevice = $"/dev/disk/by-id/virtio-{QemuArguments.HomeSerial}",
    };

    internal VmLaunchSpec LaunchSpec(WorkspaceStartRequest request, string dir, string overlay, string home, string configDrive, string accel, int port) => new()
    {
        Name = WorkspaceIds.ObjectName(request.Id),
        Accelerator = accel,
        Vcpus = Math.Max(1, (int)Math.Ceiling(request.Size.Vcpus)),
        MemoryMiB = Math.Max(512, request.Size.MemoryBytes / (1024 * 1024)),
        SystemDisk = overlay,
        HomeDisk = home,
        ConfigDrive = configDrive,
        ConsoleLog = ConsoleLog(dir),
        PidFile = Path.Combine(dir, "qemu.pid"),
        QmpSocket = QmpPath(dir),
        BindAddress = _options.BindAddress,
        HostPort = port,
    };

    /// <summary>A unix socket path must fit in 108 bytes; a long state folder gets one under /tmp.</summary>
    internal static string QmpPath(string dir)
    {
        var path = Path.Combine(dir, "qmp.sock");
        return path.Length < 100 ? path : Path.Combine(Path.GetTempPath(), $"dsvm-qmp-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(dir)))[..16]}.sock");
    }

    private WorkspaceHandle HandleFor(VmRecord r) =>
        new(r.Id, Name, JsonSerializer.SerializeToElement(new { vm = r.Name, port = r.Port, vcpus = r.Vcpus, memoryMiB = r.MemoryMiB, accel = r.Accelerator }));

    private Uri Endpoint(int port) => new($"http://{_options.BindAddress}:{port}/");

    /// <summary>ACPI power-down through QMP, then SIGTERM and SIGKILL after the timeout; the overlay and config drive go.</summary>
    public async Task StopAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        var dir = VmDir(handle.Id);
        if (AlivePid(dir) is { } pid)
        {
            try
            {
                using (var answer = new CancellationTokenSource(_options.QmpTimeout, _time))
                using (var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, answer.Token))
                {
                    await QmpClient.ExecuteAsync(QmpPath(dir), "system_powerdown", linked.Token);
                }

                await WaitExitAsync(pid, _options.StopTimeout, ct);
            }
            catch (Exception ex) when (ex is IOException or SocketException or JsonException
                || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                // No QMP, or none that answers in time (a hung qemu): fall through to the signals.
            }
        }

        await KillAsync(dir, ct);
        if (Directory.Exists(dir))
        {
            File.Delete(Path.Combine(dir, "system.qcow2"));
            File.Delete(Path.Combine(dir, "config.img"));
        }
    }

    private async Task KillAsync(string dir, CancellationToken ct)
    {
        if (AlivePid(dir) is not { } pid)
        {
            return;
        }

        try
        {
            using var p = Process.GetProcessById(pid);
            // TERM, then CONT: a frozen (SIGSTOP'd) qemu gets the TERM only once it runs again.
            await Cli.Wrap("kill").WithArguments(["-TERM", pid.ToString(CultureInfo.InvariantCulture)]).WithValidation(CommandResultValidation.None).ExecuteAsync(ct);
            await Cli.Wrap("kill").WithArguments(["-CONT", pid.ToString(CultureInfo.InvariantCulture)]).WithValidation(CommandResultValidation.None).ExecuteAsync(ct);
            if (!await WaitExitAsync(pid, TimeSpan.FromSeconds(5), ct))
            {
                p.Kill();
                await WaitExitAsync(pid, TimeSpan.FromSeconds(5), ct);
            }
        }
        catch (ArgumentException)
        {
            // Exited meanwhile.
        }
    }

    private async Task<bool> WaitExitAsync(int pid, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = _time.GetUtcNow() + timeout;
        while (_time.GetUtcNow() < deadline)
        {
            if (!Alive(pid))
            {
                return true;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200), _time, ct);
        }

        return !Alive(pid);
    }

    private static bool Alive(int pid) => File.Exists($"/proc/{pid}/cmdline") && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] == 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The pid of this folder's qemu when it is alive and really is that VM (its command line names the folder).</summary>
    private static int? AlivePid(string dir)
    {
        var pidFile = Path.Combine(dir, "qemu.pid");
        if (!File.Exists(pidFile))
        {
            return null;
        }

        string text;
        try
        {
            text = File.ReadAllText(pidFile).Trim();
        }
        catch (IOException)
        {
            return null;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || !Alive(pid))
        {
            return null;
        }

        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains(dir, StringComparison.Ordinal) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static VmRecord? ReadRecord(string dir)
    {
        var file = Path.Combine(dir, "vm.json");
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<VmRecord>(File.ReadAllText(file), Json) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        var dir = VmDir(handle.Id);
        if (ReadRecord(dir) is not { } record)
        {
            return Task.FromResult(new WorkspaceStatus(false, false, "VM not found"));
        }

        var pid = AlivePid(dir);
        var running = pid is not null;
        var panicked = GuestPanics(ConsoleLog(dir), pid) switch
        {
            0 => null,
            1 => "; the guest kernel panicked once",
            var n => $"; the guest kernel panicked {n} times",
        };
        return Task.FromResult(running
            ? new WorkspaceStatus(true, true, $"running ({record.Vcpus} vCPU, {record.MemoryMiB} MiB, {record.Accelerator.ToUpperInvariant()}){(panicked is null ? "" : panicked + " and rebooted (see its log)")}", Endpoint(record.Port))
            : new WorkspaceStatus(true, false, $"powered off{(panicked is null ? "" : panicked + " (see its log)")}"));
    }

    /// <summary>The VM's serial console, written by qemu from its start (a new file each start).</summary>
    private static string ConsoleLog(string dir) => Path.Combine(dir, "console.log");

    /// <summary>Per console file: the qemu process it was read for, how far, and the panics counted up to there.</summary>
    private static readonly ConcurrentDictionary<string, (int? Pid, long Offset, int Count)> PanicScans = new(StringComparer.Ordinal);

    /// <summary>Whether a console's scan is remembered (tests: a deleted VM's is not kept).</summary>
    internal static bool RemembersScanOf(string consoleLog) => PanicScans.ContainsKey(consoleLog);

    /// <summary>
    /// How many times the guest's kernel panicked since this start of the VM (it reboots after each: panic=5). Each
    /// call reads only what the console gained since the last one (up to its last complete line); a new qemu process
    /// (<paramref name="pid"/>) or a shorter file starts the count again, since each start writes a new console file.
    /// </summary>
    internal static int GuestPanics(string consoleLog, int? pid = null)
    {
        if (!File.Exists(consoleLog))
        {
            PanicScans.TryRemove(consoleLog, out _);
            return 0;
        }

        using var stream = new FileStream(consoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var (seenPid, offset, count) = PanicScans.GetValueOrDefault(consoleLog);
        if (seenPid != pid || stream.Length < offset)
        {
            (offset, count) = (0, 0);
        }

        stream.Position = offset;
        // Latin-1: one character per byte whatever the console holds, so the offset stays a byte count.
        using var reader = new StreamReader(stream, System.Text.Encoding.Latin1, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        var rest = reader.ReadToEnd();
        var complete = rest.LastIndexOf('\n') + 1;
        foreach (var line in rest.AsSpan(0, complete).EnumerateLines())
        {
            // "Kernel panic - not syncing: WHY" once per panic, and again in the closing "---[ end Kernel panic - …".
            if (line.Contains("Kernel panic - not syncing", StringComparison.Ordinal) && !line.Contains("end Kernel panic", StringComparison.Ordinal))
            {
                count++;
            }
        }

        PanicScans[consoleLog] = (pid, offset + complete, count);
        return count;
    }

    public async Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct)
    {
        var dir = VmDir(handle.Id);
        await KillAsync(dir, ct);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }

        // Its console is gone, and no status of it will look again: forget where its scan stopped (a long-lived hub).
        PanicScans.TryRemove(ConsoleLog(dir), out _);
        if (!keepHome && File.Exists(HomeDisk(homeVolume)))
        {
            File.Delete(HomeDisk(homeVolume));
        }
    }

    /// <summary>The tail of the serial console (kernel, dsvm-config and Jupyter's own lines), without terminal escapes.</summary>
    public async Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct)
    {
        var file = ConsoleLog(VmDir(handle.Id));
        if (!File.Exists(file))
        {
            return "";
        }

        await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var start = Math.Max(0, stream.Length - 256 * 1024);
        stream.Position = start;
        using var reader = new StreamReader(stream);
        var text = Escapes().Replace(await reader.ReadToEndAsync(ct), "").Replace("\r", "", StringComparison.Ordinal);
        return string.Join('\n', text.Split('\n').Where(l => l.Trim().Length > 0).TakeLast(tailLines));
    }

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        if (!Directory.Exists(Root))
        {
            yield break;
        }

        foreach (var dir in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
        {
            ct.ThrowIfCancellationRequested();
            if (ReadRecord(dir) is { } record)
            {
                yield return new ManagedResource(record.Id, record.Name, AlivePid(dir) is not null, HandleFor(record))
                {
                    Labels = record.Labels ?? new Dictionary<string, string>(StringComparer.Ordinal)
                    {
                        [WorkspaceLabels.Owner] = record.Owner, [WorkspaceLabels.Image] = record.Image, [WorkspaceLabels.HomeVolume] = record.HomeVolume,
                    },
                };
            }
        }

        await Task.CompletedTask;
    }

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => Task.FromResult(File.Exists(HomeDisk(homeVolume)));

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => Task.FromResult(HostCapacityNow());

    private static HostCapacity HostCapacityNow()
    {
        long memory = 0;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (line is not null)
            {
                memory = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
        }

        return new HostCapacity(Environment.ProcessorCount, memory, 0);
    }

    /// <summary>For <c>dsvm doctor</c>: qemu present, which accelerator, the host's capacity.</summary>
    public async Task<BackendHealth> DescribeAsync(CancellationToken ct)
    {
        if (HostTools.Missing([_options.QemuBinary, "qemu-img", "mkfs.fat", "mcopy"]) is { } missing)
        {
            return new BackendHealth(false, missing, null);
        }

        var version = await Cli.Wrap(QemuPath()).WithArguments(["--version"]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        var (_, detail) = await AcceleratorAsync(ct);
        var first = version.StandardOutput.Split('\n')[0].Replace("QEMU emulator version ", "qemu ", StringComparison.Ordinal).Trim();
        var running = 0;
        await foreach (var vm in ListManagedAsync(ct))
        {
            running += vm.Running ? 1 : 0;
        }

        return new BackendHealth(true, $"{first}, {detail}, {running} VM(s) running", HostCapacityNow());
    }

    private string QemuPath() => HostTools.Find(_options.QemuBinary) ?? throw new EnvironmentNotReadyException(HostTools.Missing([_options.QemuBinary])!);

    /// <summary>The accelerator: KVM only when a probe VM really runs on it (nested KVM can fail at the first vCPU run).</summary>
    public Task<(string Accel, string Detail)> AcceleratorAsync(CancellationToken ct) =>
        _accel ??= _options.Accelerator switch
        {
            "kvm" => Task.FromResult(("kvm", "KVM (configured)")),
            "tcg" => Task.FromResult(("tcg", "TCG emulation (configured)")),
            _ => ProbeKvmAsync(QemuPath()),
        };

    private static async Task<(string, string)> ProbeKvmAsync(string qemu)
    {
        try
        {
            await using (new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite))
            {
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ("tcg", "TCG emulation (no usable /dev/kvm: slow)");
        }

        // A firmware-only VM: qemu exits at once when KVM cannot run a vCPU; alive after 2 s means it works.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            var r = await Cli.Wrap(qemu)
                .WithArguments(["-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "64", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(cts.Token);
            var why = (r.StandardError.Trim().Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)) ?? $"exit {r.ExitCode}").Trim();
            return ("tcg", $"TCG emulation (KVM does not run a VM here: {why}; slow)");
        }
        catch (OperationCanceledException)
        {
            return ("kvm", "KVM");
        }
    }

    private static async Task QemuImgAsync(IEnumerable<string> args, CancellationToken ct) => await HostTools.RunAsync("qemu-img", args, ct);

    private static int FreePort(string address)
    {
        using var listener = new TcpListener(IPAddress.Parse(address), 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex UnsafeChars();

    [GeneratedRegex("^[a-z_][a-z0-9_-]{0,31}\\z")]
    private static partial Regex UserPattern();

    [GeneratedRegex(@"\x1b\[[0-9;:?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")]
    private static partial Regex Escapes();
}
