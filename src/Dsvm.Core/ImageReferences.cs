namespace Dsvm.Core;

/// <summary>Reading image references the way Docker does.</summary>
public static class ImageReferences
{
    /// <summary>
    /// True when the reference names its registry (<c>host:port/…</c>, <c>registry.example.org/…</c>,
    /// <c>localhost/…</c>): such an image (e.g. <c>REGISTRY/dsvm/NAME@sha256:…</c> from a registry catalog) is
    /// pulled as it is, never prefixed with another registry or pushed again.
    /// </summary>
    public static bool HasRegistry(string image) => RegistryOf(image) is not null;

    /// <summary>The registry an image reference names (<c>10.0.5.1:5000</c> of <c>10.0.5.1:5000/dsvm/x@sha256:…</c>), else null.</summary>
    public static string? RegistryOf(string image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var slash = image.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return null;
        }

        var first = image[..slash];
        return first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost" ? first : null;
    }

    /// <summary>
    /// The repository and tag of <c>repository:tag</c> (<c>latest</c> when there is none); the colon of a registry's
    /// port (<c>host:5000/dsvm/x</c>) is not a tag's.
    /// </summary>
    public static (string Repository, string Tag) SplitTag(string reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? (reference[..colon], reference[(colon + 1)..]) : (reference, "latest");
    }
}
