using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Kubernetes.Tests;

internal static class TestRequests
{
    public const string Token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    public static MachineSize Size(string name) => SizeCatalog.Defaults.Single(s => s.Name == name);

    public static WorkspaceStartRequest Request(string id = "ws-abc123", string size = "medium", bool gpu = false, string name = "lab", string owner = "alice") => new()
    {
        Id = id,
        Name = name,
        Owner = owner,
        Image = "dsvm/minimal:0123abcd",
        Size = Size(size),
        Token = Token,
        HomeVolume = $"dsvm-home-{owner}-{name}",
        BaseUrl = $"/user/{owner}/{name}/",
        Gpu = gpu,
        Labels = new Dictionary<string, string>
        {
            ["io.opendsvm.owner"] = owner,
            ["io.opendsvm.name"] = name,
            ["io.opendsvm.environment"] = "minimal",
            ["io.opendsvm.size"] = size,
        },
    };
}
