using Dsvm.Core.Sizes;

namespace Dsvm.Kubernetes;

/// <summary>One line for <c>dsvm doctor</c> and what the backend can run (the lead moves this to Core).</summary>
public sealed record BackendHealth(bool Healthy, string Detail, HostCapacity? Capacity);
