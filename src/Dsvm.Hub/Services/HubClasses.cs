using System.Collections.Concurrent;
using System.Security.Cryptography;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Data;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Services;

/// <summary>One class member's credentials: shown when the class is made and at each export, never stored in clear.</summary>
public sealed record ClassCredential(string Name, string Password, string Url);

/// <summary>A class as the API lists it: its members and how many workspaces are in each state.</summary>
public sealed record ClassSummary(string Name, int Members, int Running, IReadOnlyDictionary<string, int> States, IReadOnlyList<string> Users);

/// <summary>What a class teardown removed.</summary>
public sealed record ClassTeardown(string Class, int Users, int Workspaces, bool HomesDeleted);

/// <summary>
/// Classes and hackathons: a class is nothing but the users whose <see cref="HubUser.Group"/> is its name (nothing
/// new is stored). Creating one makes the users and, when asked, queues one workspace per user named after the class.
/// </summary>
public sealed partial class HubClasses(
    Accounts accounts,
    HubWorkspaces workspaces,
    IEnvironmentCatalog environments,
    HubOptions options,
    IHostApplicationLifetime lifetime,
    ILogger<HubClasses> logger)
{
    public const int MaxMembers = 500;

    private const string PasswordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    // Queued prestarts per class: cancelled by a teardown, awaited before its workspaces are deleted.
    private readonly ConcurrentDictionary<string, (Task Task, CancellationTokenSource Cancel)> _queues = new(StringComparer.Ordinal);

    public static string NewPassword() => RandomNumberGenerator.GetString(PasswordAlphabet, 16);

    public static string WorkspaceUrl(string user, string className) => $"/user/{user}/{className}/lab";

    /// <summary>Creates <paramref name="count"/> users <c>PREFIX-01…</c> in group <paramref name="name"/>; returns their passwords (once).</summary>
    public async Task<IReadOnlyList<ClassCredential>> CreateAsync(
        string name, string environment, string size, int count, bool prestart, string? prefix, CancellationToken ct)
    {
        WorkspaceNames.Validate(name, "class name");
        if (count < 1 || count > MaxMembers)
        {
            throw new UsageException($"a class has 1 to {MaxMembers} members (asked for {count})");
        }

        // Everything that can be checked is checked before the first user exists.
        workspaces.Sizes.Get(size);
        _ = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == environment)
            ?? throw new NotFoundException($"unknown environment '{environment}' (see /api/v1/environments)");
        if ((await accounts.ListUsersAsync(name, ct)).Count > 0)
        {
            throw new ConflictException($"class '{name}' already exists; tear it down first or pick another name");
        }

        var width = Math.Max(2, count.ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
        var names = Enumerable.Range(1, count).Select(i => $"{prefix ?? name}-{i.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(width, '0')}").ToList();
        foreach (var n in names)
        {
            WorkspaceNames.Validate(n, "user name (prefix too long?)");
            if (await accounts.FindUserAsync(n, ct) is not null)
            {
                throw new ConflictException($"user '{n}' already exists; pick another prefix");
            }
        }

        var created = new List<(HubUser User, string Password)>();
        try
        {
            foreach (var n in names)
            {
                var password = NewPassword();
                created.Add((await accounts.CreateUserAsync(n, password, isAdmin: false, group: name, ct), password));
            }
        }
        catch
        {
            foreach (var (u, _) in created)
            {
                await accounts.DeleteUserAsync(u.Name, CancellationToken.None);
            }

            throw;
        }

        if (prestart)
        {
            QueueStarts(name, environment, size, created.Select(c => c.User).ToList());
        }

        LogClassCreated(name, count, prestart);
        return created.Select(c => new ClassCredential(c.User.Name, c.Password, WorkspaceUrl(c.User.Name, name))).ToList();
    }

    /// <summary>Starts one workspace per member, one after another, waiting whenever the global start limit is reached.</summary>
    private void QueueStarts(string className, string environment, string size, IReadOnlyList<HubUser> users)
    {
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStopping);
        var ct = cancel.Token;
        var task = Task.Run(async () =>
        {
            foreach (var user in users)
            {
                while (!ct.IsCancellationRequested)
                {
                    try
                    {
                        await workspaces.BeginStartAsync(user, className, environment, size, ct);
                        break;
                    }
                    catch (TooManyRequestsException ex)
                    {
                        // Queued, not failed: wait until a start slot frees (or Retry-After passes), then try again.
                        var until = DateTimeOffset.UtcNow + ex.RetryAfter;
                        while (DateTimeOffset.UtcNow < until && workspaces.StartsInFlight >= options.MaxConcurrentStarts)
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
                        }
                    }
                    catch (DsvmException ex)
                    {
                        LogPrestartFailed(className, user.Name, ex.Message);
                        break;
                    }
                }
            }
        }, ct);
        _queues[className] = (task, cancel);
    }

    public async Task<IReadOnlyList<ClassSummary>> ListAsync(CancellationToken ct)
    {
        var users = (await accounts.ListUsersAsync(ct)).Where(u => u.Group is not null).ToList();
        var all = await workspaces.ListAsync(null, ct);
        return users.GroupBy(u => u.Group!, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            var members = g.Select(u => u.Name).ToHashSet(StringComparer.Ordinal);
            var theirs = all.Where(w => members.Contains(w.Owner)).ToList();
            var states = theirs.GroupBy(w => w.State.ToString().ToLowerInvariant(), StringComparer.Ordinal)
                .ToDictionary(s => s.Key, s => s.Count(), StringComparer.Ordinal);
            return new ClassSummary(g.Key, members.Count, theirs.Count(w => w.State == WorkspaceState.Running), states,
                members.OrderBy(n => n, StringComparer.Ordinal).ToList());
        }).ToList();
    }

    /// <summary>Gives every member a new random password and returns them: exporting again issues new passwords.</summary>
    public async Task<IReadOnlyList<ClassCredential>> ResetCredentialsAsync(string name, CancellationToken ct)
    {
        var members = await MembersAsync(name, ct);
        var result = new List<ClassCredential>();
        foreach (var u in members)
        {
            var password = NewPassword();
            await accounts.SetPasswordAsync(u.Name, password, ct);
            result.Add(new ClassCredential(u.Name, password, WorkspaceUrl(u.Name, name)));
        }

        LogCredentialsReset(name, result.Count);
        return result;
    }

    /// <summary>CSV <c>user,password,url</c> with a header line.</summary>
    public static string ToCsv(IEnumerable<ClassCredential> credentials) =>
        "user,password,url\n" + string.Concat(credentials.Select(c => $"{c.Name},{c.Password},{c.Url}\n"));

    /// <summary>Deletes every member's workspaces (homes kept as orphaned homes unless asked) and then the members.</summary>
    public async Task<ClassTeardown> DeleteAsync(string name, bool deleteHomes, CancellationToken ct)
    {
        var members = await MembersAsync(name, ct);
        if (_queues.TryRemove(name, out var queue))
        {
            await queue.Cancel.CancelAsync();
            try
            {
                await queue.Task;
            }
            catch (OperationCanceledException)
            {
            }

            queue.Cancel.Dispose();
        }

        var deleted = 0;
        foreach (var u in members)
        {
            // Starts under way finish first; then the workspaces go. Kept homes become orphaned homes: a class made
            // again with the same name has new users (new IDs) and so fresh homes, unless an admin reassigns them.
            deleted += await workspaces.RemoveUserAsync(u, purgeHomes: deleteHomes, ct);
            await accounts.DeleteUserAsync(u.Name, ct);
        }

        LogClassDeleted(name, members.Count, deleted, deleteHomes);
        return new ClassTeardown(name, members.Count, deleted, deleteHomes);
    }

    private async Task<IReadOnlyList<HubUser>> MembersAsync(string name, CancellationToken ct)
    {
        var members = await accounts.ListUsersAsync(name, ct);
        return members.Count > 0 ? members : throw new NotFoundException($"no class '{name}'");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "class {Class}: created {Count} users (prestart: {Prestart})")]
    private partial void LogClassCreated(string @class, int count, bool prestart);

    [LoggerMessage(Level = LogLevel.Warning, Message = "class {Class}: could not start {User}'s workspace: {Reason}")]
    private partial void LogPrestartFailed(string @class, string user, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "class {Class}: new passwords for {Count} users")]
    private partial void LogCredentialsReset(string @class, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "class {Class}: deleted {Users} users and {Workspaces} workspaces (homes deleted: {Homes})")]
    private partial void LogClassDeleted(string @class, int users, int workspaces, bool homes);
}
