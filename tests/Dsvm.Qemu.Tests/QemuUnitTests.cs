using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Images.Vm;
using Dsvm.Testing;

namespace Dsvm.Qemu.Tests;

public sealed class QemuArgumentsTests
{
    private static VmLaunchSpec Spec(string accel = "tcg", string dir = "/var/vms/w1") => new()
    {
        Name = "dsvm-ann-lab", Accelerator = accel, Vcpus = 4, MemoryMiB = 8192,
        SystemDisk = $"{dir}/system.qcow2", HomeDisk = "/var/vms/homes/dsvm-home-ann-lab.qcow2", ConfigDrive = $"{dir}/config.img",
        ConsoleLog = $"{dir}/console.log", PidFile = $"{dir}/qemu.pid", QmpSocket = $"{dir}/qmp.sock", BindAddress = "127.0.0.1", HostPort = 41234,
    };

    private static string After(IReadOnlyList<string> args, string option, int nth = 0)
    {
        var hits = args.Select((a, i) => (a, i)).Where(x => x.a == option).ToList();
        Assert.True(hits.Count > nth, $"{option} missing");
        return args[hits[nth].i + 1];
    }

    [Fact]
    public void Size_becomes_smp_and_memory()
    {
        var args = QemuArguments.Build(Spec());
        Assert.Equal("4", After(args, "-smp"));
        Assert.Equal("8192", After(args, "-m"));
    }

    [Fact]
    public void Tcg_uses_the_max_cpu_and_kvm_the_host_cpu()
    {
        var tcg = QemuArguments.Build(Spec("tcg"));
        Assert.Equal("tcg", After(tcg, "-accel"));
        Assert.Equal("max", After(tcg, "-cpu"));
        var kvm = QemuArguments.Build(Spec("kvm"));
        Assert.Equal("kvm", After(kvm, "-accel"));
        Assert.Equal("host", After(kvm, "-cpu"));
    }

    [Fact]
    public void Jupyter_is_forwarded_to_loopback_only_on_restricted_user_networking()
    {
        var netdev = After(QemuArguments.Build(Spec()), "-netdev");
        Assert.Equal("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:41234-:8888", netdev);
    }

    [Fact]
    public void Disks_are_the_overlay_the_home_with_its_serial_and_a_read_only_config_drive()
    {
        var args = QemuArguments.Build(Spec());
        Assert.StartsWith("file=/var/vms/w1/system.qcow2,if=none,id=system,format=qcow2", After(args, "-drive", 0), StringComparison.Ordinal);
        Assert.StartsWith("file=/var/vms/homes/dsvm-home-ann-lab.qcow2,if=none,id=home,format=qcow2", After(args, "-drive", 1), StringComparison.Ordinal);
        Assert.Equal("file=/var/vms/w1/config.img,if=none,id=config,format=raw,readonly=on", After(args, "-drive", 2));
        Assert.Equal("virtio-blk-pci,drive=system,bootindex=0", After(args, "-device", 0));
        Assert.Equal("virtio-blk-pci,drive=home,serial=dsvm-home", After(args, "-device", 1));
    }

    [Fact]
    public void Runs_daemonized_with_pidfile_qmp_and_serial_log()
    {
        var args = QemuArguments.Build(Spec());
        Assert.Contains("-daemonize", args);
        Assert.Equal("/var/vms/w1/qemu.pid", After(args, "-pidfile"));
        Assert.Equal("unix:/var/vms/w1/qmp.sock,server=on,wait=off", After(args, "-qmp"));
        Assert.Equal("file:/var/vms/w1/console.log", After(args, "-serial"));
        Assert.Contains("-nodefaults", args);
    }

    [Fact]
    public void Commas_in_paths_are_escaped_for_qemu()
    {
        var args = QemuArguments.Build(Spec(dir: "/var/a,b"));
        Assert.StartsWith("file=/var/a,,b/system.qcow2,", After(args, "-drive", 0), StringComparison.Ordinal);
        Assert.Equal("file:/var/a,,b/console.log", After(args, "-serial"));
    }

    [Fact]
    public void Launch_spec_rounds_fractional_vcpus_up_and_uses_the_size_memory()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());
        var request = Request(new MachineSize("tiny", 0.5, 1, 0, SizeClass.General));
        var spec = backend.LaunchSpec(request, "/d", "/d/system.qcow2", "/h.qcow2", "/d/config.img", "tcg", 5000);
        Assert.Equal(1, spec.Vcpus);
        Assert.Equal(1024, spec.MemoryMiB);
        Assert.Equal("dsvm-w1", spec.Name); // named by the workspace ID, never by user names
    }

    [Fact]
    public void Home_disks_are_named_after_the_home_volume_under_the_state_folder()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());
        Assert.Equal(Path.Combine(tmp.Path, "vms", "homes", "dsvm-home-ann-lab.qcow2"), backend.HomeDisk("dsvm-home-ann-lab"));
    }

    /// <summary>A deleted VM's console scan is not kept: a hub that creates and deletes VMs for weeks does not grow.</summary>
    [Fact]
    public async Task Deleting_a_vm_forgets_its_console_scan()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());
        var dir = backend.VmDir("ws-0123456789ab");
        Directory.CreateDirectory(dir);
        var log = Path.Combine(dir, "console.log");
        File.WriteAllText(log, "[    1.0] boot\n");
        Assert.Equal(0, QemuWorkspaceBackend.GuestPanics(log, 100));
        Assert.True(QemuWorkspaceBackend.RemembersScanOf(log));

        await backend.DeleteAsync(new WorkspaceHandle("ws-0123456789ab", "qemu", default), "dsvm-home-h-0123456789ab", keepHome: true, default);

        Assert.False(Directory.Exists(dir));
        Assert.False(QemuWorkspaceBackend.RemembersScanOf(log));
    }

    [Fact]
    public async Task A_vm_is_listed_with_the_labels_of_its_start_so_a_lost_record_can_be_rebuilt()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());

        var labels = new Dictionary<string, string>
        {
            [WorkspaceLabels.Owner] = "ann", [WorkspaceLabels.Name] = "lab", [WorkspaceLabels.Environment] = "datascience", [WorkspaceLabels.Size] = "small",
        };
        WriteRecord(backend, new VmRecord
        {
            Id = "ws-0123456789ab", Name = "dsvm-ws-0123456789ab", Owner = "ann", Image = "dsvm/datascience:1", HomeVolume = "dsvm-home-h-0123456789ab",
            Port = 1, Vcpus = 1, MemoryMiB = 512, Accelerator = "tcg", Labels = labels,
        });
        // A record written before labels were kept: what the record itself knows, and no name (so it is not rebuilt).
        WriteRecord(backend, new VmRecord
        {
            Id = "ws-ba9876543210", Name = "dsvm-ws-ba9876543210", Owner = "bob", Image = "dsvm/minimal:2", HomeVolume = "dsvm-home-bob-old",
            Port = 2, Vcpus = 1, MemoryMiB = 512, Accelerator = "tcg",
        });

        var listed = (await backend.ListManagedAsync(default).ToListAsync()).ToDictionary(r => r.WorkspaceId);
        Assert.Equal(labels, listed["ws-0123456789ab"].Labels);
        Assert.False(listed["ws-0123456789ab"].Running);
        var old = listed["ws-ba9876543210"].Labels;
        Assert.Equal("bob", old[WorkspaceLabels.Owner]);
        Assert.Equal("dsvm-home-bob-old", old[WorkspaceLabels.HomeVolume]);
        Assert.False(old.ContainsKey(WorkspaceLabels.Name));
    }

    [Fact]
    public async Task An_empty_state_folder_lists_nothing_and_unknown_vms_do_not_exist()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions(), new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());
        Assert.Empty(await backend.ListManagedAsync(default).ToListAsync());
        var status = await backend.GetStatusAsync(new WorkspaceHandle("nope", "qemu", default), default);
        Assert.False(status.Exists);
        Assert.Equal("", await backend.GetLogsAsync(new WorkspaceHandle("nope", "qemu", default), 10, default));
        var capacity = await backend.GetCapacityAsync(default);
        Assert.Equal(Environment.ProcessorCount, capacity.Cpus);
        Assert.True(capacity.MemoryBytes > 0);
        Assert.Equal(0, capacity.Gpus);
    }

    /// <summary>
    /// Issue 12, a hung engine: a frozen qemu (SIGSTOP) still accepts on its QMP socket and never answers. Before, the
    /// stop waited for QMP's greeting forever; now it gives QMP <see cref="QemuBackendOptions.QmpTimeout"/>, then
    /// signals (TERM, CONT, KILL) and the VM is gone. The "VM" here is a frozen process whose command line names its
    /// folder (as qemu's does) and a socket that accepts and never answers.
    /// </summary>
    [Fact]
    public async Task A_hung_qemu_is_stopped_by_signals_after_the_qmp_timeout()
    {
        using var tmp = new TempDir();
        var backend = new QemuWorkspaceBackend(new QemuBackendOptions { QmpTimeout = TimeSpan.FromMilliseconds(300) },
            new DsvmPaths(tmp.Path, tmp.Path), new NoExporter());
        var dir = WriteRecord(backend, new VmRecord
        {
            Id = "ws-0123456789ab", Name = "dsvm-ws-0123456789ab", Owner = "ann", Image = "dsvm/minimal:1", HomeVolume = "dsvm-home-h-0123456789ab",
            Port = 1, Vcpus = 1, MemoryMiB = 512, Accelerator = "tcg",
        });
        using var qmp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        qmp.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(dir, "qmp.sock")));
        qmp.Listen(4);
        using var vm = System.Diagnostics.Process.Start("/bin/sh", ["-c", "sleep 600; : " + dir])!;
        File.WriteAllText(Path.Combine(dir, "qemu.pid"), vm.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using (var stop = System.Diagnostics.Process.Start("kill", ["-STOP", vm.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            await stop.WaitForExitAsync();
        }

        var handle = new WorkspaceHandle("ws-0123456789ab", "qemu", default);
        Assert.True((await backend.GetStatusAsync(handle, default)).Running);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await backend.StopAsync(handle, bound.Token);

        Assert.True(vm.HasExited);
        Assert.False((await backend.GetStatusAsync(handle, default)).Running);
    }

    /// <summary>A VM's folder with its record, as a start leaves it; returns the folder.</summary>
    private static string WriteRecord(QemuWorkspaceBackend backend, VmRecord r)
    {
        var dir = Path.Combine(backend.Root, r.Id);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "vm.json"),
            System.Text.Json.JsonSerializer.Serialize(r, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)));
        return dir;
    }

    internal static WorkspaceStartRequest Request(MachineSize size, string owner = "ann") => new()
    {
        Id = "w1", Name = "lab", Owner = owner, Image = "dsvm/minimal:abc", Size = size, Token = "tok_0123456789abcdef",
        HomeVolume = "dsvm-home-ann-lab", BaseUrl = "/user/ann/lab/",
    };

    private sealed class NoExporter : IDiskExporter
    {
        public Task<DiskExport> ExportAsync(string image, DiskExportOptions options, Action<string>? log, CancellationToken ct) =>
            throw new NotFoundException("no exports in unit tests");
    }
}

public sealed class ConfigDriveTests
{
    private static VmConfig Config() => new()
    {
        InstanceId = "w1-1700000000", Hostname = "lab", Token = "tok_0123456789abcdef", User = "ann", BaseUrl = "/user/ann/lab/",
        HomeDevice = "/dev/disk/by-id/virtio-dsvm-home",
    };

    [Fact]
    public void Carries_user_hostname_token_base_url_and_home_device()
    {
        var files = ConfigDrive.Render(Config());
        Assert.Equal(
            "# OpenDSVM machine configuration (read by dsvm-config at every boot)\nDSVM_USER=ann\nDSVM_HOSTNAME=lab\n"
            + "JUPYTER_TOKEN=tok_0123456789abcdef\nDSVM_BASE_URL=/user/ann/lab/\nDSVM_HOME_DEVICE=/dev/disk/by-id/virtio-dsvm-home\n",
            files["dsvm.conf"]);
        Assert.Equal("instance-id: w1-1700000000\nlocal-hostname: lab\n", files["meta-data"]);
    }

    [Theory]
    [InlineData("token", "short")]
    [InlineData("token", "abc$(reboot)def")]
    [InlineData("hostname", "Lab_1")]
    [InlineData("base", "/user/ann/lab")]
    [InlineData("base", "/user/a b/")]
    [InlineData("user", "Root")]
    public void Odd_values_are_refused_before_they_reach_the_guest(string field, string value)
    {
        var c = field switch
        {
            "token" => Config() with { Token = value },
            "hostname" => Config() with { Hostname = value },
            "base" => Config() with { BaseUrl = value },
            _ => Config() with { User = value },
        };
        var ex = Assert.Throws<UsageException>(() => ConfigDrive.Render(c));
        Assert.Contains(value, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_backend_gives_the_owner_as_user_when_it_is_a_valid_login_name()
    {
        var size = new MachineSize("small", 1, 2, 0, SizeClass.General);
        var at = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var c = QemuWorkspaceBackend.ConfigFor(QemuArgumentsTests.Request(size), at);
        Assert.Equal("ann", c.User);
        Assert.Equal("lab", c.Hostname);
        Assert.Equal("/user/ann/lab/", c.BaseUrl);
        Assert.Equal("w1-1700000000", c.InstanceId);
        Assert.Equal("/dev/disk/by-id/virtio-dsvm-home", c.HomeDevice);
        Assert.Equal("dsvm", QemuWorkspaceBackend.ConfigFor(QemuArgumentsTests.Request(size, owner: "Ann.B"), at).User);
    }

    [Fact]
    public async Task The_drive_is_a_fat_image_labelled_cidata_made_without_mounting()
    {
        if (HostTools.Missing(["mkfs.fat", "mcopy"]) is { } missing)
        {
            Assert.Fail(missing);
        }

        using var tmp = new TempDir();
        var img = Path.Combine(tmp.Path, "config.img");
        await ConfigDrive.WriteAsync(img, Config(), default);
        Assert.Equal(1024 * 1024, new FileInfo(img).Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(img));
        }

        var conf = await HostTools.RunAsync("mtype", ["-i", img, "::dsvm.conf"], default);
        Assert.Contains("JUPYTER_TOKEN=tok_0123456789abcdef\n", conf, StringComparison.Ordinal);
        var label = await HostTools.RunAsync("mlabel", ["-s", "-i", img, "::"], default);
        Assert.Contains("CIDATA", label, StringComparison.Ordinal);
    }
}

public sealed class GuestLayerTests
{
    [Fact]
    public void The_guest_layer_adds_kernel_init_and_services_as_root_from_the_environment_image()
    {
        var dockerfile = VmGuest.Context("dsvm/minimal:abc").Text("Dockerfile");
        Assert.StartsWith("# Generated", dockerfile, StringComparison.Ordinal);
        Assert.Contains("FROM dsvm/minimal:abc\nUSER root\n", dockerfile, StringComparison.Ordinal);
        Assert.Contains("linux-image-amd64 systemd systemd-sysv udev", dockerfile, StringComparison.Ordinal);
        Assert.Contains("systemctl enable dsvm-config.service dsvm-jupyter.service systemd-networkd.service", dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public void Jupyter_runs_the_container_entrypoint_as_the_unprivileged_user_with_the_config_drive_token()
    {
        Assert.Contains("User=65530\n", VmGuest.JupyterUnit, StringComparison.Ordinal);
        Assert.Contains("ExecStart=/opt/dsvm/bin/dsvm-start\n", VmGuest.JupyterUnit, StringComparison.Ordinal);
        Assert.Contains("EnvironmentFile=/etc/dsvm/jupyter.env\n", VmGuest.JupyterUnit, StringComparison.Ordinal);
        Assert.Contains("After=dsvm-config.service", VmGuest.JupyterUnit, StringComparison.Ordinal);
    }

    [Fact]
    public void The_home_disk_is_formatted_only_when_it_has_no_file_system()
    {
        Assert.Contains("if ! blkid -p \"$HOME_DEVICE\" > /dev/null 2>&1; then", VmGuest.ConfigScript, StringComparison.Ordinal);
        Assert.Single(VmGuest.ConfigScript.Split("mkfs.ext4").Skip(1));
    }

    [Fact]
    public void The_tag_follows_the_image_id()
    {
        Assert.Equal(VmGuest.Tag("sha256:aa"), VmGuest.Tag("sha256:aa"));
        Assert.NotEqual(VmGuest.Tag("sha256:aa"), VmGuest.Tag("sha256:bb"));
    }

    [Fact]
    public void The_disk_boots_syslinux_from_a_fat_partition_with_the_root_by_uuid()
    {
        var cfg = DiskExporter.SyslinuxConfig("0c2f7a5e-1111-2222-3333-444455556666");
        Assert.Contains("KERNEL /vmlinuz\n  INITRD /initrd.img\n", cfg, StringComparison.Ordinal);
        Assert.Contains("APPEND root=UUID=0c2f7a5e-1111-2222-3333-444455556666 ro console=tty0 console=ttyS0,115200 quiet", cfg, StringComparison.Ordinal);
        // A panic reboots (the CI run of 2026-12-07 waited 900 s on a guest that panicked 4 s into its boot under TCG).
        Assert.Contains(" panic=5 unknown_nmi_panic\n", cfg, StringComparison.Ordinal);
        Assert.Equal("label: dos\nstart=2048, size=131072, type=e, bootable\nstart=133120, type=83\n",
            DiskExporter.PartitionScript(64L << 20, 65L << 20));
    }

    [Fact]
    public void A_guest_panic_is_counted_once_from_the_console()
    {
        using var tmp = new TempDir();
        var log = Path.Combine(tmp.Path, "console.log");
        Assert.Equal(0, QemuWorkspaceBackend.GuestPanics(log));
        // The tail of the console of the CI run of 2026-12-07 (a panic 4 s into the boot under TCG), then a second boot.
        File.WriteAllText(log, """
            [    3.837388] PKRU: 55555554
            [    3.837491] Kernel panic - not syncing: Fatal exception in interrupt
            [    5.745986] Shutting down cpus with NMI
            [    5.757177] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---
            [    0.000000] Linux version 6.12.48+deb13-amd64
            dsvm-config: hostname=vm1 nproc=2 memory=4096MiB
            """);
        Assert.Equal(1, QemuWorkspaceBackend.GuestPanics(log));
        File.AppendAllText(log, "[   12.000000] Kernel panic - not syncing: NMI: Not continuing\n");
        Assert.Equal(2, QemuWorkspaceBackend.GuestPanics(log));
    }

    /// <summary>Each status reads only what the console gained (it was read whole on every call).</summary>
    [Fact]
    public void The_console_is_read_from_where_the_last_look_stopped_and_again_for_a_new_qemu()
    {
        using var tmp = new TempDir();
        var log = Path.Combine(tmp.Path, "console.log");
        File.WriteAllBytes(log, [0xff, 0xfe, (byte)'\n']); // not UTF-8: offsets must stay byte counts
        File.AppendAllText(log, "[    3.8] Kernel panic - not syncing: Fatal exception\n[    5.0] boot\n");
        Assert.Equal(1, QemuWorkspaceBackend.GuestPanics(log, 100));
        // A line still being written is not read yet; once complete it counts once.
        File.AppendAllText(log, "[   12.0] Kernel panic - not sync");
        Assert.Equal(1, QemuWorkspaceBackend.GuestPanics(log, 100));
        File.AppendAllText(log, "ing: NMI\n");
        Assert.Equal(2, QemuWorkspaceBackend.GuestPanics(log, 100));
        Assert.Equal(2, QemuWorkspaceBackend.GuestPanics(log, 100));
        // The old part is not read again: only appended text is, proven by changing it in place.
        var bytes = File.ReadAllBytes(log);
        var at = System.Text.Encoding.Latin1.GetString(bytes).IndexOf("Kernel", StringComparison.Ordinal);
        bytes[at] = (byte)'k';
        File.WriteAllBytes(log, bytes);
        Assert.Equal(2, QemuWorkspaceBackend.GuestPanics(log, 100));
        // A new qemu process (a new start writes a new console): counted from the beginning.
        Assert.Equal(1, QemuWorkspaceBackend.GuestPanics(log, 101));
        // A shorter file than the last look: counted from the beginning too.
        File.WriteAllText(log, "[    1.0] boot\n");
        Assert.Equal(0, QemuWorkspaceBackend.GuestPanics(log, 101));
    }

    [Fact]
    public void The_image_env_becomes_a_quoted_environment_file()
    {
        var file = DiskExporter.ImageEnvFile(["PATH=/usr/bin:/opt/dsvm/bin", "GREETING=say \"hi\" \\o/", "BAD", "MULTI=a\nb"]);
        Assert.Contains("PATH=\"/usr/bin:/opt/dsvm/bin\"\n", file, StringComparison.Ordinal);
        Assert.Contains("GREETING=\"say \\\"hi\\\" \\\\o/\"\n", file, StringComparison.Ordinal);
        Assert.DoesNotContain("BAD", file, StringComparison.Ordinal);
        Assert.DoesNotContain("MULTI", file, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sparse_copy_writes_only_non_zero_blocks_at_the_offset()
    {
        using var tmp = new TempDir();
        var source = Path.Combine(tmp.Path, "src");
        var data = new byte[3 * 4096];
        data[5000] = 7;
        await File.WriteAllBytesAsync(source, data);
        var target = Path.Combine(tmp.Path, "dst");
        await using (var f = File.Create(target))
        {
            f.SetLength(64 * 1024);
        }

        await DiskExporter.CopySparseAsync(source, target, 8192, default);
        var result = await File.ReadAllBytesAsync(target);
        Assert.Equal(7, result[8192 + 5000]);
        Assert.Equal(1, result.Count(b => b != 0));
    }

    [Fact]
    public void A_missing_tool_names_its_package()
    {
        var why = HostTools.Missing(["surely-not-a-program-dsvm"]);
        Assert.NotNull(why);
        Assert.Contains("surely-not-a-program-dsvm not found: install", why, StringComparison.Ordinal);
        Assert.Equal("qemu-utils", HostTools.Packages["qemu-img"]);
        Assert.Equal("qemu-system-x86", HostTools.Packages["qemu-system-x86_64"]);
    }
}
