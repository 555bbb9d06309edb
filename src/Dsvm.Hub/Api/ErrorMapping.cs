using Dsvm.Core;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Api;

/// <summary>Turns OpenDSVM's errors into ProblemDetails with the right status; engine API faults are a 503 naming the engine; anything else is a 500 without details.</summary>
public sealed partial class ErrorMapping(IProblemDetailsService problems, ILogger<ErrorMapping> logger) : IExceptionHandler
{
    public static int StatusFor(DsvmException ex) => ex switch
    {
        TooManyRequestsException => StatusCodes.Status429TooManyRequests,
        ForbiddenException => StatusCodes.Status403Forbidden,
        NotFoundException => StatusCodes.Status404NotFound,
        ConflictException => StatusCodes.Status409Conflict,
        UsageException or SpecValidationException => StatusCodes.Status400BadRequest,
        WorkspaceStartException => StatusCodes.Status422UnprocessableEntity,
        Dsvm.Core.Workspaces.BackendNotSupportedException => StatusCodes.Status501NotImplemented,
        EnvironmentNotReadyException => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is BadHttpRequestException bad)
        {
            return await WriteBadRequestAsync(httpContext, bad);
        }

        if (exception is not DsvmException ex)
        {
            // An engine API fault that the backend did not turn into a DsvmException: the engine is down, not the hub.
            if (Dsvm.Core.Workspaces.EngineFaults.EngineOf(exception) is not { } engine)
            {
                return false;
            }

            // The user reads the engine's kind only; the log (for admins) has the fault, endpoint included.
            LogEngineFault(exception, engine, httpContext.Request.Method, httpContext.Request.Path);
            ex = new EnvironmentNotReadyException($"{Dsvm.Core.Workspaces.EngineFaults.ForUsers(exception)}; try again later (an admin can run `dsvm doctor`)");
        }

        var status = StatusFor(ex);
        var context = httpContext;
        context.Response.StatusCode = status;
        if (ex is TooManyRequestsException tooMany)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(tooMany.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = ex,
            ProblemDetails = new ProblemDetails
            {
                Status = status,
                Title = ex.Kind,
                Detail = ex.Message,
                Type = $"https://opendsvm.dev/errors/{ex.Kind}",
            },
        });
    }

    /// <summary>
    /// A request the endpoint could not even bind: malformed JSON, a value of the wrong type or out of the type's range,
    /// an unparsable query value, an unsupported content type. The detail names the field (the JSON path) and never
    /// carries the framework's type names or a stack trace.
    /// </summary>
    private async ValueTask<bool> WriteBadRequestAsync(HttpContext context, BadHttpRequestException bad)
    {
        var status = bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : StatusCodes.Status400BadRequest;
        var detail = bad.InnerException switch
        {
            System.Text.Json.JsonException { Path: { Length: > 1 } path } when path.StartsWith("$.", StringComparison.Ordinal) || path.StartsWith("$[", StringComparison.Ordinal) =>
                $"{path.TrimStart('$', '.')}: not a valid value here (wrong type, out of range or malformed JSON)",
            System.Text.Json.JsonException => "body: not valid JSON for this request (a JSON object is expected)",
            _ => bad.Message,
        };
        context.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = bad,
            ProblemDetails = new ProblemDetails
            {
                Status = status,
                Title = "usage",
                Detail = detail,
                Type = "https://opendsvm.dev/errors/usage",
            },
        });
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "the {Engine} engine failed during {Method} {Path}; answered 503")]
    private partial void LogEngineFault(Exception exception, string engine, string method, string path);
}
