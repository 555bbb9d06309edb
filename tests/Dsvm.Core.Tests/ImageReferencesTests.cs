namespace Dsvm.Core.Tests;

public sealed class ImageReferencesTests
{
    [Theory]
    [InlineData("dsvm/minimal:latest", "dsvm/minimal", "latest")]
    [InlineData("dsvm/minimal:a7854e1a97104fcd", "dsvm/minimal", "a7854e1a97104fcd")]
    [InlineData("dsvm/minimal", "dsvm/minimal", "latest")]
    [InlineData("10.0.5.1:5000/dsvm/x", "10.0.5.1:5000/dsvm/x", "latest")]
    [InlineData("10.0.5.1:5000/dsvm/x:v2", "10.0.5.1:5000/dsvm/x", "v2")]
    [InlineData("dsvm-failed/minimal:abc", "dsvm-failed/minimal", "abc")]
    public void SplitTag_takes_the_tag_after_the_last_slash_only(string reference, string repository, string tag) =>
        Assert.Equal((repository, tag), ImageReferences.SplitTag(reference));

    [Theory]
    [InlineData("dsvm/x:1", null)]
    [InlineData("10.0.5.1:5000/dsvm/x@sha256:abc", "10.0.5.1:5000")]
    [InlineData("localhost/dsvm/x", "localhost")]
    [InlineData("registry.example.org/a/b:c", "registry.example.org")]
    public void RegistryOf_names_the_registry_only_when_the_reference_does(string reference, string? registry) =>
        Assert.Equal(registry, ImageReferences.RegistryOf(reference));
}
