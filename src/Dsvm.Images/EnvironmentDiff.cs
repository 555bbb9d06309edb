using System.Globalization;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>One side of <c>dsvm env diff</c>: a lock file (named, or an environment's current one) or a built image.</summary>
public sealed record DiffSide(string Kind, string Name, string? LockDigest, int Packages);

/// <summary>One layer-making step of an image (oldest first) as <c>docker history</c> reports it.</summary>
public sealed record ImageLayer(string Id, string Step, long SizeBytes);

/// <summary>A step of the two images side by side; a side without the step has no size.</summary>
public sealed record LayerRow(string Step, long? SizeA, long? SizeB, bool Shared);

/// <summary>What <c>dsvm env diff A B</c> reports.</summary>
public sealed record EnvironmentDiffReport
{
    public required DiffSide A { get; init; }
    public required DiffSide B { get; init; }
    public required PackageDiff Packages { get; init; }

    /// <summary>Only when both sides are images.</summary>
    public IReadOnlyList<LayerRow>? Layers { get; init; }

    public long? SizeA { get; init; }
    public long? SizeB { get; init; }
}

/// <summary>
/// Compares two locks or two built images: packages added, removed, upgraded and downgraded (Debian version
/// order), and for two images the size of every layer side by side.
/// </summary>
public sealed class EnvironmentDiffer(DockerCli docker, ImageInspector inspector)
{
    public async Task<EnvironmentDiffReport> DiffAsync(string a, string b, CancellationToken ct)
    {
        var left = await LoadAsync(a, ct);
        var right = await LoadAsync(b, ct);
        var report = new EnvironmentDiffReport
        {
            A = left.Side, B = right.Side, Packages = PackageDiff.Compute(left.Packages, right.Packages),
        };
        if (left.Side.Kind != "image" || right.Side.Kind != "image")
        {
            return report;
        }

        var la = await LayersAsync(left.Side.Name, ct);
        var lb = await LayersAsync(right.Side.Name, ct);
        return report with { Layers = AlignLayers(la, lb), SizeA = la.Sum(l => l.SizeBytes), SizeB = lb.Sum(l => l.SizeBytes) };
    }

    private async Task<(DiffSide Side, IReadOnlyList<LockedPackage> Packages)> LoadAsync(string arg, CancellationToken ct)
    {
        if (LockFileFor(arg) is { } file)
        {
            var l = EnvironmentLock.Load(file);
            var all = l.AllPackages;
            return (new DiffSide("lock", file, l.Digest, all.Count), all);
        }

        await docker.EnsureEngineAsync(ct);
        var image = EnvironmentLocator.ImageFor(arg);
        if (!await docker.ImageExistsAsync(image, ct))
        {
            throw new NotFoundException($"'{arg}' is not a lock file, an environment or an image in the local engine");
        }

        var report = await inspector.InspectAsync(image, ct);
        var packages = report.Packages.Select(p => new LockedPackage(p.Name, p.Version)).ToList();
        return (new DiffSide("image", image, report.Lock.Length > 0 ? report.Lock : null, packages.Count), packages);
    }

    /// <summary>
    /// The lock file an argument names: a file (a spec file means the lock beside it), a folder's lock, or a
    /// curated environment's lock. Null for anything else (an image reference). A lock that should be there but is
    /// not is an error naming the file.
    /// </summary>
    public static string? LockFileFor(string arg)
    {
        if (File.Exists(arg))
        {
            var full = Path.GetFullPath(arg);
            return Path.GetFileName(full) == SpecLoader.FileName
                ? Path.Combine(Path.GetDirectoryName(full)!, EnvironmentLock.FileName)
                : full;
        }

        if (Directory.Exists(arg))
        {
            return Path.Combine(Path.GetFullPath(arg), EnvironmentLock.FileName);
        }

        if (arg.EndsWith(".lock", StringComparison.Ordinal))
        {
            throw new NotFoundException($"{Path.GetFullPath(arg)}: no such lock file");
        }

        if (SpecLoader.NamePattern().IsMatch(arg))
        {
            var dir = EnvironmentLocator.Roots().Select(r => Path.Combine(r, arg)).FirstOrDefault(d => File.Exists(Path.Combine(d, SpecLoader.FileName)));
            if (dir is not null)
            {
                return Path.Combine(dir, EnvironmentLock.FileName);
            }
        }

        return null;
    }

    /// <summary>The layer-making steps of an image, oldest first; metadata steps (ENV, LABEL, USER ...) make no layer.</summary>
    public async Task<IReadOnlyList<ImageLayer>> LayersAsync(string image, CancellationToken ct)
    {
        var r = await docker.RunAsync(["history", "--no-trunc", "--human=false", "--format", "{{.ID}}\t{{.Size}}\t{{.CreatedBy}}", image], ct);
        if (!r.Ok)
        {
            throw new NotFoundException($"image '{image}': {r.Tail(1)}");
        }

        return ParseHistory(r.Stdout);
    }

    internal static IReadOnlyList<ImageLayer> ParseHistory(string text)
    {
        var layers = new List<ImageLayer>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Reverse())
        {
            var f = line.TrimEnd('\r').Split('\t', 3);
            if (f.Length < 2 || !long.TryParse(f[1], CultureInfo.InvariantCulture, out var size))
            {
                continue;
            }

            var step = StepOf(f.Length == 3 ? f[2] : "");
            if (step is not null)
            {
                layers.Add(new ImageLayer(f[0], step, size));
            }
        }

        return layers;
    }

    /// <summary>"RUN …", "COPY … /dest", "base rootfs"; null for a metadata step that makes no layer.</summary>
    internal static string? StepOf(string createdBy)
    {
        var s = createdBy.Trim();
        if (s.Length == 0)
        {
            return "base rootfs (imported)";
        }

        var nop = s.IndexOf("#(nop)", StringComparison.Ordinal);
        if (nop < 0)
        {
            // A RUN step: the classic builder records the shell command after the SHELL prefix.
            var shell = s.IndexOf(" -euc ", StringComparison.Ordinal);
            return "RUN " + (shell >= 0 ? s[(shell + 6)..] : s).Trim();
        }

        var instruction = s[(nop + 6)..].Trim();
        if (!instruction.StartsWith("COPY ", StringComparison.Ordinal) && !instruction.StartsWith("ADD ", StringComparison.Ordinal))
        {
            return null;
        }

        // "COPY file:<hash> in /dest": the content hash changes with the content; the step is its destination.
        var into = instruction.LastIndexOf(" in ", StringComparison.Ordinal);
        return into > 0 ? instruction[..instruction.IndexOf(' ', StringComparison.Ordinal)] + " → " + instruction[(into + 4)..].Trim() : instruction;
    }

    /// <summary>Pairs the steps of two images in order (longest common subsequence of the step texts).</summary>
    internal static IReadOnlyList<LayerRow> AlignLayers(IReadOnlyList<ImageLayer> a, IReadOnlyList<ImageLayer> b)
    {
        var n = a.Count;
        var m = b.Count;
        var lcs = new int[n + 1, m + 1];
        for (var i = n - 1; i >= 0; i--)
        {
            for (var j = m - 1; j >= 0; j--)
            {
                lcs[i, j] = a[i].Step == b[j].Step ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var rows = new List<LayerRow>();
        int x = 0, y = 0;
        while (x < n || y < m)
        {
            if (x < n && y < m && a[x].Step == b[y].Step)
            {
                rows.Add(new LayerRow(a[x].Step, a[x].SizeBytes, b[y].SizeBytes, Shared: a[x].Id == b[y].Id && a[x].Id.StartsWith("sha256:", StringComparison.Ordinal)));
                x++;
                y++;
            }
            else if (y >= m || (x < n && lcs[x + 1, y] >= lcs[x, y + 1]))
            {
                rows.Add(new LayerRow(a[x].Step, a[x].SizeBytes, null, false));
                x++;
            }
            else
            {
                rows.Add(new LayerRow(b[y].Step, null, b[y].SizeBytes, false));
                y++;
            }
        }

        return rows;
    }
}
