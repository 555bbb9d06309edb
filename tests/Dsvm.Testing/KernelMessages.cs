using System.Text.Json;

namespace Dsvm.Testing;

/// <summary>Messages of Jupyter's kernel protocol (v5) as a client sends them over <c>api/kernels/ID/channels</c> (legacy JSON).</summary>
public static class KernelMessages
{
    /// <summary>An <c>execute_request</c> on the shell channel; the replies name <paramref name="msgId"/> as their parent.</summary>
    public static byte[] ExecuteRequest(string code, string msgId, string username = "test") => Message("execute_request", msgId, username, new
    {
        code,
        silent = false,
        store_history = false,
        user_expressions = new { },
        allow_stdin = false,
        stop_on_error = true,
    });

    /// <summary>A <c>kernel_info_request</c> on the shell channel: the kernel answers it with a busy and an idle status on IOPub.</summary>
    public static byte[] KernelInfoRequest(string msgId, string username = "test") => Message("kernel_info_request", msgId, username, new { });

    private static byte[] Message(string type, string msgId, string username, object content) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        header = new
        {
            msg_id = msgId,
            username,
            session = Guid.NewGuid().ToString("N"),
            msg_type = type,
            version = "5.3",
            date = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        },
        parent_header = new { },
        metadata = new { },
        content,
        channel = "shell",
        buffers = Array.Empty<object>(),
    });
}
