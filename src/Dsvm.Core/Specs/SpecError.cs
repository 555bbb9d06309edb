namespace Dsvm.Core.Specs;

/// <summary>One problem in an input file, located by file, line, column and key path (e.g. <c>checks.python[2]</c>).</summary>
public sealed record SpecError(string File, int Line, int Column, string Path, string Message)
{
    public override string ToString()
    {
        var where = Line > 0 ? $"{File}:{Line}:{Column}" : File;
        return string.IsNullOrEmpty(Path) ? $"{where}: {Message}" : $"{where}: {Path}: {Message}";
    }
}
