namespace Dsvm.Images;

/// <summary>POSIX shell quoting for the few generated scripts that run inside images.</summary>
public static class Sh
{
    public static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
