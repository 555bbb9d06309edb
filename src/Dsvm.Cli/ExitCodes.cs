using Dsvm.Core;

namespace Dsvm.Cli;

/// <summary>Named exit codes; scripts can tell failures apart without parsing text.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Error = 1;
    public const int Usage = 2;
    public const int InvalidSpec = 3;
    public const int NotFound = 4;
    public const int NotReady = 5;
    public const int Lock = 6;
    public const int Build = 7;
    public const int Checks = 8;
    public const int Workspace = 9;
    public const int Conflict = 10;
    public const int Forbidden = 11;
    public const int State = 12;
    public const int Registry = 13;
    public const int Cancelled = 130;

    public static int For(DsvmException ex) => ex.Kind switch
    {
        "invalid-spec" => InvalidSpec,
        "not-found" => NotFound,
        "not-ready" => NotReady,
        "lock" => Lock,
        "build" => Build,
        "checks" => Checks,
        "workspace" => Workspace,
        "conflict" => Conflict,
        "forbidden" => Forbidden,
        "state" => State,
        "usage" => Usage,
        "registry" => Registry,
        _ => Error,
    };
}
