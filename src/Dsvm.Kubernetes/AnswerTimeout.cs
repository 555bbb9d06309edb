namespace Dsvm.Kubernetes;

/// <summary>
/// Bounds each request to the API server until its answer's headers: a hung API server (it accepts the connection
/// and never answers) becomes an <see cref="HttpRequestException"/> saying so, which the backend turns into its
/// one not-ready line, instead of the client's 100 s wait and a cancellation nobody asked for. A followed stream
/// (logs) is bounded only until its headers, never while it runs.
/// </summary>
internal sealed class AnswerTimeout(TimeSpan timeout, TimeProvider time) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var timer = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await base.SendAsync(request, linked.Token);
        }
        catch (OperationCanceledException) when (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new HttpRequestException(
                $"no answer within {timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} s; "
                + "check that the API server runs and is not stuck (kubectl get --raw /readyz), or raise request-timeout for the backend in backends.yaml");
        }
    }
}
