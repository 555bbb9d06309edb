using Dsvm.Core;

namespace Dsvm.Images.Registry;

/// <summary>A registry could not be reached, refused the credentials, or answered something unusable.</summary>
public sealed class RegistryException(string message) : DsvmException(message)
{
    public override string Kind => "registry";
}
