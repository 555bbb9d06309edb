namespace Dsvm.Docker.Tests;

/// <summary>The container's start time as the engine writes it (read with <see cref="Dsvm.Core.IsoTime"/>).</summary>
public sealed class EngineTimeTests
{
    [Fact]
    public void Nine_fractional_digits_as_the_engine_writes_them_are_read()
    {
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 22, 0, 1, TimeSpan.Zero).AddTicks(1234567),
            DockerWorkspaceBackend.StartedAt("2026-12-07T22:00:01.123456789Z"));
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 22, 0, 1, TimeSpan.Zero), DockerWorkspaceBackend.StartedAt("2026-12-07T22:00:01Z"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0001-01-01T00:00:00Z")]
    [InlineData("yesterday")]
    public void Never_or_unreadable_is_no_time(string? text) => Assert.Null(DockerWorkspaceBackend.StartedAt(text));
}
