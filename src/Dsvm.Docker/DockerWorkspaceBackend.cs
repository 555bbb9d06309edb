using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Docker;

/// <summary>Settings of the local Docker backend.</summary>
public sealed record DockerBackendOptions
{
    /// <summary>Engine endpoint; <c>DOCKER_HOST</c> or the local socket by default.</summary>
    public Uri Endpoint { get; init; } = DefaultEndpoint();

    /// <summary>Published ports bind here only: workspaces are never reachable from other machines directly.</summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    public long PidsLimit { get; init; } = 1024;

    /// <summary>
    /// How long an engine call may go unanswered (<c>request-timeout</c> in backends.yaml): Docker.DotNet's default
    /// timeout, which every call but the long ones has. Those get a bound of their own: stop waits its grace period on
    /// top, a log tail has this too; a pull, the home take-over's wait and exec's stream end with the start or exec
    /// timeout instead. A hung engine (accepts the connection, never answers) is a not-ready error after this.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = DockerEndpoint.DefaultRequestTimeout;

    /// <summary>What stop gives the server to exit before the engine kills it.</summary>
    public const int StopGraceSeconds = 10;

    /// <summary>
    /// Install the host rules that keep workspaces off the host (<see cref="HostFirewall"/>) at the first start, when
    /// running as root; otherwise <c>scripts/host-setup.sh</c> must have installed them.
    /// </summary>
    public bool ManageHostFirewall { get; init; } = true;

    public string Iptables { get; init; } = "iptables";

    /// <summary>
    /// The login for a registry an image names (a registry catalog's <c>REGISTRY/dsvm/NAME@sha256:…</c>), used when
    /// the engine pulls it; none: anonymous.
    /// </summary>
    public RegistryLogins? Logins { get; init; }

    public const int JupyterPort = 8888;
    public const string HomePath = "/home/dsvm";
    public const string User = WorkspaceUser.DockerUser;

    public static Uri DefaultEndpoint() => DockerEndpoint.Default();
}

/// <summary>
/// Workspaces as containers of the local engine. The container is disposable (stop removes it); the home is a
/// named volume that outlives it, so resize is stop + start with new limits on the same home. Every container and
/// volume carries <c>io.opendsvm.managed=true</c> and <c>io.opendsvm.workspace=ID</c> for reconciliation.
/// </summary>
public sealed class DockerWorkspaceBackend(DockerClient client, DockerBackendOptions options, IGpuDetector gpus, TimeProvider? time = null)
    : IWorkspaceBackend, IDescribableBackend, IWorkspaceExec
{
    public const string ManagedLabel = WorkspaceLabels.Managed;
    public const string WorkspaceLabel = WorkspaceLabels.Workspace;

    public DockerWorkspaceBackend(DockerBackendOptions options, IGpuDetector gpus, TimeProvider? time = null)
        : this(new DockerClientConfiguration(options.Endpoint, defaultTimeout: options.RequestTimeout).CreateClient(), options, gpus, time) { }

    private readonly DockerNetworks _networks = new(client);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string Name => "docker";

    /// <summary>From the workspace's ID only (<c>dsvm-ws-…</c>): two owners' names can never meet here.</summary>
    internal static string ContainerName(WorkspaceStartRequest r) => WorkspaceIds.ObjectName(r.Id);

    /// <summary>
    /// The container by the engine's own ID recorded at start (never by a name: a name can be taken over by another
    /// container), else by the ID-derived name.
    /// </summary>
    internal static string ContainerRef(WorkspaceHandle handle) =>
        handle.State.ValueKind == JsonValueKind.Object && handle.State.TryGetProperty("container", out var c) && c.GetString() is { Length: > 0 } id
            ? id
            : WorkspaceIds.ObjectName(handle.Id);

    public Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct) =>
        AnsweredAsync(() => StartContainerAsync(request, progress, ct), ct);

    private async Task<WorkspaceLaunch> StartContainerAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        await EnsureImageAsync(request.Image, progress, ct);
        await EnsureHomeAsync(request, ct);
        await EnsureNetworkAsync(request.Size.Network, ct);
        var name = ContainerName(request);
        // A container left by a crash or a killed command (found by its workspace label, whatever it was named):
        // the home is separate, so it is safe to replace.
        foreach (var leftover in await ContainersOfAsync(request.Id, ct))
        {
            await RemoveContainerAsync(leftover, ct);
        }

        await RemoveContainerAsync(name, ct);

        var parameters = CreateParameters(request, name, await NvidiaRuntimeAsync(ct));
        CreateContainerResponse created;
        try
        {
            created = await client.Containers.CreateContainerAsync(parameters, ct);
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the engine refused the container: {Message(ex)}");
        }

        try
        {
            await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), ct);
        }
        catch (DockerApiException ex)
        {
            await RemoveContainerAsync(created.ID, CancellationToken.None);
            throw new WorkspaceStartException(
                Message(ex).Contains("device driver", StringComparison.OrdinalIgnoreCase) ? WorkspaceFailure.Gpu : WorkspaceFailure.Backend,
                $"the engine could not start the container: {Message(ex)}");
        }

        var state = JsonSerializer.SerializeToElement(new { container = created.ID, name });
        var handle = new WorkspaceHandle(request.Id, Name, state);
        var inspect = await client.Containers.InspectContainerAsync(created.ID, ct);
        if (EndpointOf(inspect) is not { } endpoint)
        {
            // Exited before its port was even published: say why, then clean up.
            var logs = await GetLogsAsync(handle, 15, CancellationToken.None);
            await RemoveContainerAsync(created.ID, CancellationToken.None);
            throw new WorkspaceStartException(WorkspaceFailure.Backend,
                $"the server exited at once (exit code {inspect.State.ExitCode})" + (logs.Trim().Length > 0 ? $"\nlast log lines:\n{logs.TrimEnd()}" : ""));
        }

        return new WorkspaceLaunch(handle, endpoint);
    }

    /// <summary>The container definition: limits from the size, loopback-only port, unprivileged and locked down.</summary>
    internal CreateContainerParameters CreateParameters(WorkspaceStartRequest request, string name, bool nvidiaRuntime)
    {
        var env = new List<string>
        {
            $"JUPYTER_TOKEN={request.Token}",
            $"DSVM_BASE_URL={request.BaseUrl}",
            $"DSVM_PORT={DockerBackendOptions.JupyterPort}",
            $"DSVM_WORKSPACE={request.Name}",
            $"DSVM_SIZE={request.Size.Name}",
            // Set, not looked up: an image from before uid 65530 has no passwd entry for it (the engine would say "/").
            $"HOME={DockerBackendOptions.HomePath}",
        };
        env.AddRange(request.Variables.Select(v => $"{v.Key}={v.Value}"));
        var memory = request.Size.MemoryBytes;
        var host = new HostConfig
        {
            NanoCPUs = request.Size.NanoCpus,
            Memory = memory,
            MemorySwap = memory,
            PidsLimit = options.PidsLimit,
            ShmSize = Math.Min(memory / 4, 2L << 30),
            CapDrop = ["ALL"],
            SecurityOpt = ["no-new-privileges"],
            // Peers and the host are out of reach on either network (DockerNetworks, HostFirewall). The engine publishes
            // no port from an internal network: the host reaches an isolated workspace at its own address.
            NetworkMode = DockerNetworks.NameOf(request.Size.Network),
            PortBindings = request.Size.Network == WorkspaceNetwork.Isolated ? null : new Dictionary<string, IList<PortBinding>>
            {
                [$"{DockerBackendOptions.JupyterPort}/tcp"] = [new PortBinding { HostIP = options.BindAddress, HostPort = "" }],
            },
            Mounts =
            [
                new Mount { Type = "volume", Source = request.HomeVolume, Target = DockerBackendOptions.HomePath },
            ],
            RestartPolicy = new RestartPolicy { Name = RestartPolicyKind.No },
        };
        if (request.Gpu)
        {
            GpuMapping.Apply(host, env, request.Size.Gpus, nvidiaRuntime, GpuMapping.HostDevices(), GpuMapping.HostLibraries(),
                File.Exists("/usr/bin/nvidia-smi") ? "/usr/bin/nvidia-smi" : null);
        }
        else
        {
            env.Add("CUDA_VISIBLE_DEVICES=");
        }

        var labels = new Dictionary<string, string>(request.Labels)
        {
            [ManagedLabel] = "true",
            [WorkspaceLabel] = request.Id,
        };
        if (request.OwnerId.Length > 0)
        {
            labels[WorkspaceLabels.OwnerId] = request.OwnerId;
        }

        if (request.HomeId.Length > 0)
        {
            labels[WorkspaceLabels.Home] = request.HomeId;
        }

        return new CreateContainerParameters
        {
            Name = name,
            Image = request.Image,
            User = DockerBackendOptions.User,
            Env = env,
            Labels = labels,
            Hostname = request.Name,
            ExposedPorts = new Dictionary<string, EmptyStruct> { [$"{DockerBackendOptions.JupyterPort}/tcp"] = default },
            HostConfig = host,
        };
    }

    /// <summary>The workspace's network and, when this process may, the host rules that keep it off the host.</summary>
    private async Task EnsureNetworkAsync(WorkspaceNetwork network, CancellationToken ct)
    {
        try
        {
            await _networks.EnsureAsync(network, ct);
            if (options.ManageHostFirewall)
            {
                await HostFirewall.EnsureAsync(options.Iptables, ct);
            }
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the engine refused the workspace network: {Message(ex)}");
        }
        catch (DsvmException ex) when (ex is not WorkspaceStartException)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, ex.Message);
        }
    }

    /// <summary>
    /// The image must be in the engine: one that names its registry (a registry catalog's digest reference) is pulled
    /// by the engine, with the configured login for that registry; a local name must have been built here.
    /// </summary>
    private async Task EnsureImageAsync(string image, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        try
        {
            await client.Images.InspectImageAsync(image, ct);
            return;
        }
        catch (DockerApiException ex) when (ex is DockerImageNotFoundException || ex.StatusCode == HttpStatusCode.NotFound)
        {
            if (ImageReferences.RegistryOf(image) is not { } registry)
            {
                throw new WorkspaceStartException(WorkspaceFailure.Image, $"image '{image}' is not in the local engine; build it with `dsvm env build`");
            }

            progress?.Report(new WorkspaceProgress($"pulling {image}"));
            await PullAsync(image, registry, ct);
        }
    }

    private async Task PullAsync(string image, string registry, CancellationToken ct)
    {
        var login = options.Logins?.Invoke(registry);
        var auth = login is null ? new AuthConfig() : new AuthConfig { ServerAddress = registry, Username = login.Username, Password = login.Password };
        var errors = new List<string>();
        try
        {
            // The engine's stream carries a failure as a message, not as a status code.
            await client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = image }, auth, new SyncProgress(m =>
            {
                if ((m.Error?.Message ?? m.ErrorMessage) is { Length: > 0 } e)
                {
                    lock (errors)
                    {
                        errors.Add(e);
                    }
                }
            }), ct);
        }
        catch (DockerApiException ex)
        {
            errors.Add(Message(ex));
        }

        if (errors.Count > 0)
        {
            var hint = login is null ? $" (no login is configured for {registry})" : $" (as user '{login.Username}')";
            throw new WorkspaceStartException(WorkspaceFailure.Image, $"the engine could not pull '{image}' from {registry}{hint}: {errors[0]}");
        }
    }

    /// <summary>Synchronous progress: the engine's stream is read on one thread, an error must not be lost to a post.</summary>
    private sealed class SyncProgress(Action<JSONMessage> onMessage) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => onMessage(value);
    }

    private async Task EnsureHomeAsync(WorkspaceStartRequest request, CancellationToken ct)
    {
        if (await HomeExistsAsync(request.HomeVolume, ct))
        {
            await TakeOverHomeAsync(request, ct);
            return;
        }

        await client.Volumes.CreateAsync(new VolumesCreateParameters
        {
            Name = request.HomeVolume,
            Labels = WorkspaceLabels.ForHome(request),
        }, ct);
    }


    /// <summary>
    /// An existing home may hold files of the uid the images had before <see cref="WorkspaceUser.Uid"/>: a one-shot
    /// container of the workspace's image, root with CAP_CHOWN and CAP_DAC_READ_SEARCH only, no network, gives them to
    /// the workspace user (<see cref="WorkspaceUser.TakeOverScript"/>; a no-op once the home's directory is the
    /// user's). A new volume needs none: the engine fills it from the image's home, owned by the user already.
    /// </summary>
    private async Task TakeOverHomeAsync(WorkspaceStartRequest request, CancellationToken ct)
    {
        var name = WorkspaceIds.ObjectName(request.Id) + "-home";
        await RemoveContainerAsync(name, ct);
        string id;
        try
        {
            id = (await client.Containers.CreateContainerAsync(new CreateContainerParameters
            {
                Name = name,
                Image = request.Image,
                User = "0:0",
                Entrypoint = ["/bin/sh", "-c", WorkspaceUser.TakeOverScript(DockerBackendOptions.HomePath)],
                Labels = new Dictionary<string, string> { [ManagedLabel] = "true", [WorkspaceLabel] = request.Id },
                HostConfig = new HostConfig
                {
                    NetworkMode = "none",
                    CapDrop = ["ALL"],
                    CapAdd = ["CHOWN", "DAC_READ_SEARCH"],
                    SecurityOpt = ["no-new-privileges"],
                    PidsLimit = 64,
                    Mounts = [new Mount { Type = "volume", Source = request.HomeVolume, Target = DockerBackendOptions.HomePath }],
                },
            }, ct)).ID;
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the engine refused the home take-over container: {Message(ex)}");
        }

        try
        {
            await client.Containers.StartContainerAsync(id, new ContainerStartParameters(), ct);
            var exit = await client.Containers.WaitContainerAsync(id, ct);
            if (exit.StatusCode != 0)
            {
                var logs = await GetLogsAsync(new WorkspaceHandle(request.Id, Name, JsonSerializer.SerializeToElement(new { container = id })), 5, ct);
                throw new WorkspaceStartException(WorkspaceFailure.Backend,
                    $"the home {request.HomeVolume} could not be given to uid {WorkspaceUser.Uid} (exit code {exit.StatusCode}): {logs.Trim()}");
            }
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the engine could not run the home take-over container: {Message(ex)}");
        }
        finally
        {
            await RemoveContainerAsync(id, CancellationToken.None);
        }
    }

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => AnsweredAsync(async () =>
    {
        try
        {
            await client.Volumes.InspectAsync(homeVolume, ct);
            return true;
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }, ct);

    private async Task<bool> NvidiaRuntimeAsync(CancellationToken ct) =>
        (await SystemInfoAsync(ct)).Runtimes?.ContainsKey("nvidia") == true;

    private (SystemInfoResponse Info, long At)? _systemInfo;

    /// <summary>The engine's info (CPUs, memory, runtimes), cached for a minute: it is on every start's path.</summary>
    private async Task<SystemInfoResponse> SystemInfoAsync(CancellationToken ct)
    {
        var now = Environment.TickCount64;
        if (_systemInfo is { } cached && now - cached.At < 60_000)
        {
            return cached.Info;
        }

        var info = await client.System.GetSystemInfoAsync(ct);
        _systemInfo = (info, now);
        return info;
    }

    /// <summary>
    /// Stops (gracefully, then by force) and removes every container of the workspace; the home stays. Docker.DotNet
    /// gives stop no timeout (the engine answers after the grace period): it gets the grace period and the request
    /// timeout.
    /// </summary>
    public Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => AnsweredAsync(async () =>
    {
        foreach (var id in await ContainersOfAsync(handle, ct))
        {
            try
            {
                await WithinAsync(TimeSpan.FromSeconds(DockerBackendOptions.StopGraceSeconds) + options.RequestTimeout,
                    token => client.Containers.StopContainerAsync(id, new ContainerStopParameters { WaitBeforeKillSeconds = DockerBackendOptions.StopGraceSeconds }, token), ct);
            }
            catch (DockerContainerNotFoundException)
            {
                continue;
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
            {
                continue;
            }

            await RemoveContainerAsync(id, ct);
        }

        return true;
    }, ct);

    /// <summary>The workspace's containers: found by its label, so a half-recorded start is cleaned up too.</summary>
    private Task<IReadOnlyList<string>> ContainersOfAsync(WorkspaceHandle handle, CancellationToken ct) => ContainersOfAsync(handle.Id, ct);

    private async Task<IReadOnlyList<string>> ContainersOfAsync(string workspaceId, CancellationToken ct)
    {
        var containers = await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{WorkspaceLabel}={workspaceId}"] = true } },
        }, ct);
        return containers.Select(c => c.ID).ToList();
    }

    private async Task RemoveContainerAsync(string nameOrId, CancellationToken ct)
    {
        try
        {
            await client.Containers.RemoveContainerAsync(nameOrId, new ContainerRemoveParameters { Force = true }, ct);
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (DockerApiException ex) when (ex.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
        {
            // Gone already, or removal in progress.
        }
    }

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) => AnsweredAsync(async () =>
    {
        try
        {
            var c = await client.Containers.InspectContainerAsync(ContainerRef(handle), ct);
            var detail = c.State.Running ? "running" : $"{c.State.Status}, exit code {c.State.ExitCode}{(c.State.OOMKilled ? ", killed: out of memory" : "")}";
            return new WorkspaceStatus(true, c.State.Running, detail, c.State.Running ? EndpointOf(c) : null,
                c.State.Running ? StartedAt(c.State.StartedAt) : null);
        }
        catch (DockerContainerNotFoundException)
        {
            return new WorkspaceStatus(false, false, "container not found");
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return new WorkspaceStatus(false, false, "container not found");
        }
    }, ct);

    /// <summary>The engine's start time (nine fractional digits), or null for its zero time ("never") or none.</summary>
    internal static DateTimeOffset? StartedAt(string? text) => IsoTime.TryParse(text) is { Year: > 1 } t ? t : null;

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) => AnsweredAsync(async () =>
    {
        foreach (var id in await ContainersOfAsync(handle, ct))
        {
            await RemoveContainerAsync(id, ct);
        }

        if (!keepHome)
        {
            await DeleteHomeAsync(homeVolume, ct);
        }

        return true;
    }, ct);

    public Task DeleteHomeAsync(string homeVolume, CancellationToken ct) => AnsweredAsync(async () =>
    {
        try
        {
            await client.Volumes.RemoveAsync(homeVolume, force: false, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (DockerApiException ex)
        {
            throw new DsvmException($"the home volume {homeVolume} could not be removed: {Message(ex)}");
        }

        return true;
    }, ct);

    /// <summary>The last lines of the server's log: a stream, which Docker.DotNet gives no timeout, so bounded by the request timeout.</summary>
    public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => WithinAsync(options.RequestTimeout, async token =>
    {
        try
        {
            using var stream = await client.Containers.GetContainerLogsAsync(ContainerRef(handle), tty: false,
                new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = tailLines.ToString(System.Globalization.CultureInfo.InvariantCulture) }, token);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(token);
            // Jupyter logs to stderr; keep the engine's order as well as we can by joining.
            return string.Join('\n', (stdout + stderr).TrimEnd('\n').Split('\n').TakeLast(tailLines));
        }
        catch (DockerContainerNotFoundException)
        {
            return "";
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return "";
        }
    }, ct);

    /// <summary>
    /// Docker exec as the workspace's user (<see cref="WorkspaceUser"/>, in its home), wrapped in coreutils <c>timeout</c> so the process
    /// itself is killed at the deadline (the engine has no "kill exec"). Output beyond the cap is read and dropped.
    /// </summary>
    public Task<WorkspaceExecResult> ExecAsync(WorkspaceHandle handle, WorkspaceExecRequest request, CancellationToken ct) =>
        AnsweredAsync(() => ExecInContainerAsync(handle, request, ct), ct);

    private async Task<WorkspaceExecResult> ExecInContainerAsync(WorkspaceHandle handle, WorkspaceExecRequest request, CancellationToken ct)
    {
        if (request.Command.Count == 0 || string.IsNullOrEmpty(request.Command[0]))
        {
            throw new UsageException("exec needs a command");
        }

        var seconds = Math.Max(1, (int)Math.Ceiling(request.Timeout.TotalSeconds));
        var cmd = new List<string> { "timeout", "--kill-after=5", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        cmd.AddRange(WorkspaceVariables.WrapExec(request.Command));
        ContainerExecCreateResponse created;
        try
        {
            created = await client.Exec.ExecCreateContainerAsync(ContainerRef(handle), new ContainerExecCreateParameters
            {
                AttachStdout = true,
                AttachStderr = true,
                Cmd = cmd,
                User = DockerBackendOptions.User,
                WorkingDir = DockerBackendOptions.HomePath,
            }, ct);
        }
        catch (DockerContainerNotFoundException)
        {
            throw new ConflictException("the workspace's server is not running");
        }
        catch (DockerApiException ex) when (ex.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict)
        {
            throw new ConflictException($"the workspace's server is not running: {Message(ex)}");
        }

        var stdout = new CappedOutput(request.OutputLimitBytes);
        var stderr = new CappedOutput(request.OutputLimitBytes);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // timeout(1) ends the process; this only guards against an engine that never closes the stream.
        await WithinAsync(request.Timeout + TimeSpan.FromSeconds(15), async token =>
        {
            using var stream = await client.Exec.StartAndAttachContainerExecAsync(created.ID, tty: false, token);
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, token);
                if (read.EOF)
                {
                    return true;
                }

                (read.Target == MultiplexedStream.TargetStream.StandardError ? stderr : stdout).Write(buffer.AsSpan(0, read.Count));
            }
        }, ct);

        var inspect = await client.Exec.InspectContainerExecAsync(created.ID, ct);
        var code = (int)inspect.ExitCode;
        var timedOut = code is 124 or 137 && clock.Elapsed >= request.Timeout;
        return new WorkspaceExecResult(code, stdout.ToString(), stderr.ToString(), stdout.Truncated || stderr.Truncated, timedOut);
    }

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var containers = await AnsweredAsync(() => client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{ManagedLabel}=true"] = true } },
        }, ct), ct);
        foreach (var c in containers)
        {
            if (!c.Labels.TryGetValue(WorkspaceLabel, out var id))
            {
                continue;
            }

            var name = c.Names.FirstOrDefault()?.TrimStart('/') ?? c.ID;
            yield return new ManagedResource(id, name, c.State == "running",
                new WorkspaceHandle(id, Name, JsonSerializer.SerializeToElement(new { container = c.ID, name })))
            {
                Labels = c.Labels.ToDictionary(),
            };
        }
    }

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => AnsweredAsync(async () =>
    {
        var info = await SystemInfoAsync(ct);
        var detected = await gpus.DetectAsync(ct);
        return new HostCapacity((int)info.NCPU, info.MemTotal, detected.Count);
    }, ct);

    /// <summary>Engine version and reachability, capacity, and how many managed containers run.</summary>
    public async Task<BackendHealth> DescribeAsync(CancellationToken ct)
    {
        try
        {
            var info = await client.System.GetSystemInfoAsync(ct);
            var running = 0;
            await foreach (var r in ListManagedAsync(ct))
            {
                running += r.Running ? 1 : 0;
            }

            var capacity = await GetCapacityAsync(ct);
            return new BackendHealth(true, $"engine {info.ServerVersion} at {options.Endpoint}, {running} workspace container(s) running", capacity);
        }
        catch (Exception ex) when (ex is DockerApiException or HttpRequestException or IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            return new BackendHealth(false, $"engine at {options.Endpoint} not reachable: {ex.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new BackendHealth(false, NotAnswering(options.RequestTimeout).Message);
        }
        catch (EnvironmentNotReadyException ex)
        {
            return new BackendHealth(false, ex.Message);
        }
    }

    /// <summary>
    /// Engine calls with Docker.DotNet's default timeout (<see cref="DockerBackendOptions.RequestTimeout"/>): a
    /// cancellation that is not the caller's is that timeout, the engine not answering; one not-ready line.
    /// </summary>
    private async Task<T> AnsweredAsync<T>(Func<Task<T>> calls, CancellationToken ct)
    {
        try
        {
            return await calls();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw NotAnswering(options.RequestTimeout);
        }
    }

    /// <summary>A call Docker.DotNet gives no timeout of its own (a stream, stop's wait), bounded by <paramref name="limit"/> on this backend's clock.</summary>
    private async Task<T> WithinAsync<T>(TimeSpan limit, Func<CancellationToken, Task<T>> call, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(limit, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            return await call(linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw NotAnswering(limit);
        }
    }

    private EnvironmentNotReadyException NotAnswering(TimeSpan waited) =>
        EngineFaults.NotAnswering("Docker", options.Endpoint.ToString(), waited, "`systemctl status docker`, dockerd's log");

    private Uri? EndpointOf(ContainerInspectResponse c)
    {
        if (c.NetworkSettings?.Ports is { } ports
            && ports.TryGetValue($"{DockerBackendOptions.JupyterPort}/tcp", out var bindings)
            && bindings?.FirstOrDefault() is { } b && !string.IsNullOrEmpty(b.HostPort))
        {
            return new Uri($"http://{options.BindAddress}:{b.HostPort}/");
        }

        if (c.NetworkSettings?.Networks is { } networks && networks.TryGetValue(DockerNetworks.IsolatedNetwork, out var isolated)
            && IPAddress.TryParse(isolated.IPAddress, out var ip))
        {
            return new Uri($"http://{ip}:{DockerBackendOptions.JupyterPort}/");
        }

        return null;
    }

    private static string Message(DockerApiException ex)
    {
        try
        {
            return JsonDocument.Parse(ex.ResponseBody).RootElement.GetProperty("message").GetString() ?? ex.Message;
        }
        catch (JsonException)
        {
            return ex.ResponseBody ?? ex.Message;
        }
    }
}
