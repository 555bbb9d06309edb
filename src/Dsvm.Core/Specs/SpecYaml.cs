using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Specs;

/// <summary>
/// The one way OpenDSVM reads YAML (environment.yaml, sizes.yaml, backends.yaml): bounded in size, nesting and
/// scalar length, without anchors and aliases, and every fault of the text a <see cref="SpecValidationException"/>
/// at its file, line and column. YamlDotNet's parser keeps its own stack, but building the representation model
/// recurses once per level of nesting, so the nesting is checked on the event stream before a node is built.
/// </summary>
public static partial class SpecYaml
{
    /// <summary>The largest file read (4 MiB: far more than a spec with thousands of packages needs).</summary>
    public const long MaxBytes = 4L * 1024 * 1024;

    /// <summary>Levels of nested mappings and lists.</summary>
    public const int MaxDepth = 32;

    /// <summary>The longest single value (64 KiB): descriptions, commands and names are far shorter.</summary>
    public const int MaxScalarLength = 64 * 1024;

    /// <summary>Reads a file for <see cref="Load"/>, refusing one larger than <see cref="MaxBytes"/> before reading it.</summary>
    public static string ReadFile(string file)
    {
        var length = new FileInfo(file).Length;
        if (length > MaxBytes)
        {
            throw TooLarge(file, length);
        }

        return File.ReadAllText(file);
    }

    /// <summary>All documents of <paramref name="text"/>, or a located error.</summary>
    public static YamlStream Load(string text, string file)
    {
        // UTF-8 bytes are at least the characters: a text over the limit in characters is over it in bytes.
        if (text.Length > MaxBytes)
        {
            throw TooLarge(file, text.Length);
        }

        try
        {
            var stream = new YamlStream();
            stream.Load(new BoundedParser(new Parser(new StringReader(text)), file));
            return stream;
        }
        catch (YamlException ex)
        {
            var reason = ex.InnerException?.Message ?? ex.Message;
            // YamlDotNet prefixes the location; keep the plain reason.
            reason = LocationPrefix().Replace(reason, "");
            throw new SpecValidationException([new SpecError(file, Line(ex.Start), Column(ex.Start), "", $"not valid YAML: {reason}")]);
        }
    }

    /// <summary>
    /// As <see cref="LoadMapping"/>, but a text with no document (empty, or comments only: an example with every entry
    /// commented out) is an empty mapping.
    /// </summary>
    public static YamlMappingNode LoadMappingOrEmpty(string text, string file, string expected) =>
        Load(text, file).Documents.Count == 0 ? new YamlMappingNode() : LoadMapping(text, file, expected);

    /// <summary>The root mapping of <paramref name="text"/>; anything else is a <see cref="SpecValidationException"/> at its place.</summary>
    public static YamlMappingNode LoadMapping(string text, string file, string expected)
    {
        var stream = Load(text, file);
        return stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode m
            ? m
            : throw new SpecValidationException([new SpecError(file, 1, 1, "", expected)]);
    }

    private static SpecValidationException TooLarge(string file, long size) =>
        new([new SpecError(file, 1, 1, "", $"the file is {size / (1024.0 * 1024):0.#} MiB; the limit is {MaxBytes / (1024 * 1024)} MiB")]);

    private static int Line(Mark m) => (int)Math.Min(m.Line, int.MaxValue);

    private static int Column(Mark m) => (int)Math.Min(m.Column, int.MaxValue);

    /// <summary>Passes the parser's events on, refusing too deep nesting, too long values and aliases where they occur.</summary>
    private sealed class BoundedParser(IParser inner, string file) : IParser
    {
        private int _depth;

        public ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            var last = inner.Current?.End ?? Mark.Empty;
            try
            {
                if (!inner.MoveNext())
                {
                    return false;
                }
            }
            catch (InvalidOperationException)
            {
                // The scanner fails this way on some broken text (e.g. "x: [[\ny"): where it was is where the last event
                // ended. Its own message (.NET's "Operation is not valid due to the current state of the object.") says
                // nothing to a user; what breaks the scanner there is an unclosed bracket or quote.
                throw new SpecValidationException([new SpecError(file, Math.Max(1, Line(last)), Math.Max(1, Column(last)), "",
                    "not valid YAML: the parser could not go on after this point (an unclosed [, { or quote?)")]);
            }

            switch (inner.Current)
            {
                case MappingStart or SequenceStart when ++_depth > MaxDepth:
                    throw Refuse(inner.Current, $"nested deeper than {MaxDepth} levels");
                case MappingEnd or SequenceEnd:
                    _depth--;
                    break;
                case AnchorAlias:
                    throw Refuse(inner.Current, "anchors and aliases (*name) are not supported; write the value out");
                case Scalar { Value.Length: > MaxScalarLength } s:
                    throw Refuse(s, $"a value of {s.Value.Length} characters; the limit is {MaxScalarLength}");
            }

            return true;
        }

        private SpecValidationException Refuse(ParsingEvent e, string message) =>
            new([new SpecError(file, Line(e.Start), Column(e.Start), "", message)]);
    }

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex LocationPrefix();
}
