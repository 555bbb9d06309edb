namespace Dsvm.Core;

/// <summary>
/// Where this machine's Docker engine is when nothing else says: <c>DOCKER_HOST</c>, else the local socket. The one
/// resolver of the image services and the Docker and Swarm backends.
/// </summary>
public static class DockerEndpoint
{
    public static Uri Default() =>
        Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } h ? new Uri(h) : new Uri("unix:///var/run/docker.sock");

    /// <summary>
    /// How long an engine API call may go unanswered when the backend's <c>request-timeout</c> does not say: Docker.DotNet's
    /// own default, for the image services and the Docker and Swarm backends.
    /// </summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(30);
}
