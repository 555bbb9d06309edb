namespace Dsvm.Core;

/// <summary>A user name and password (or token) for one registry. Never printed: <see cref="ToString"/> hides the secret.</summary>
public sealed record RegistryLogin(string Username, string Password)
{
    public override string ToString() => $"{Username}:***";
}

/// <summary>
/// The login for a registry host (<c>host</c> or <c>host:port</c>, as an image reference names it), or null for an
/// anonymous pull. Comes from configuration (the hub's <c>Hub:Registry</c>, <c>DSVM_REGISTRY_*</c>,
/// <c>DATA/registries.json</c>), never from a command line.
/// </summary>
public delegate RegistryLogin? RegistryLogins(string registryHost);
