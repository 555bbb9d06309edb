using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Images;

namespace Dsvm.Qemu;

/// <summary>The <c>qemu</c> backend type: a VM per workspace on a disk exported from this machine's images.</summary>
public static class QemuBackendRegistration
{
    public const string Type = "qemu";

    /// <summary>Registers the <c>qemu</c> type, built in (usable by name without a <c>backends.yaml</c>).</summary>
    /// <param name="images">The image services that export disks (asked when a backend is made).</param>
    public static BackendRegistry AddQemuBackend(this BackendRegistry registry, DsvmPaths paths, Func<ImageServices> images) => registry.Add(new BackendRegistration
    {
        Type = Type,
        Keys = ["accelerator", "home-size", "bind-address", "start-timeout", "state-folder"],
        Capabilities = new BackendCapabilities(),
        BuiltIn = true,
        Prepare = section =>
        {
            var options = Options(section);
            return () => new QemuWorkspaceBackend(options, paths, images());
        },
        // Disks are exported from images on this machine's engine.
        UsesLocalEngine = _ => true,
    });

    public static QemuBackendOptions Options(BackendSection s)
    {
        var o = new QemuBackendOptions();
        var accel = s.Get("accelerator") ?? o.Accelerator;
        if (accel is not ("auto" or "kvm" or "tcg"))
        {
            throw new SpecValidationException([s.Error("accelerator", $"'{accel}' is not an accelerator (auto, kvm, tcg)")]);
        }

        return o with
        {
            Accelerator = accel,
            HomeSize = s.Get("home-size") ?? o.HomeSize,
            BindAddress = s.Get("bind-address") ?? o.BindAddress,
            StartTimeout = s.Number("start-timeout", 1, 7200, "seconds") is { } secs ? TimeSpan.FromSeconds(secs) : o.StartTimeout,
            StateFolder = s.Get("state-folder"),
        };
    }
}
