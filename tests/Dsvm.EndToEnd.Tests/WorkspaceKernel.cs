using Dsvm.Testing;

namespace Dsvm.EndToEnd.Tests;

/// <summary>
/// Runs code in a NEW kernel of a workspace's own Jupyter server, as a notebook does: a script started with
/// <c>dsvm exec</c> asks the server (on the container's loopback, with the token from the container's environment)
/// for a kernel over its REST API and runs the code over the kernel's WebSocket (tornado, which Jupyter ships). The
/// kernel is a child of the server, so it sees exactly what the entrypoint set up for the user.
/// </summary>
public static class WorkspaceKernel
{
    private const string Runner = """
        import asyncio, json, os, sys, urllib.request, uuid
        from tornado import httpclient, websocket
        base = "http://127.0.0.1:%s%s" % (os.environ.get("DSVM_PORT", "8888"), os.environ.get("DSVM_BASE_URL", "/"))
        auth = {"Authorization": "token " + os.environ["JUPYTER_TOKEN"]}
        def api(method, path, body=None):
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(base + path, data=data, method=method, headers=dict(auth, **{"Content-Type": "application/json"}))
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read()
                return json.loads(text) if text else None
        kernel = api("POST", "api/kernels", {"name": "python3"})["id"]
        async def run(code):
            ws = await websocket.websocket_connect(httpclient.HTTPRequest(base.replace("http", "ws", 1) + "api/kernels/%s/channels" % kernel, headers=auth))
            msg_id = uuid.uuid4().hex
            await ws.write_message(json.dumps({"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            out, status, idle = [], None, False
            while status is None or not idle:
                raw = await asyncio.wait_for(ws.read_message(), 600)
                if raw is None:
                    raise SystemExit("the kernel's channel closed")
                m = json.loads(raw)
                if m.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                t = m["msg_type"]
                if t == "stream":
                    out.append(m["content"]["text"])
                elif t == "error":
                    out.append("\n".join(m["content"]["traceback"]))
                elif t == "execute_reply":
                    status = m["content"]["status"]
                elif t == "status" and m["content"]["execution_state"] == "idle":
                    idle = True
            ws.close()
            return status, "".join(out)
        try:
            status, out = asyncio.run(run(sys.argv[1]))
        finally:
            api("DELETE", "api/kernels/" + kernel)
        sys.stdout.write(out)
        sys.exit(0 if status == "ok" else 1)
        """;

    /// <summary>Runs <paramref name="code"/> in a new kernel of workspace <paramref name="name"/>; returns what it printed.</summary>
    public static async Task<string> RunAsync(string name, string code)
    {
        var r = await Dsvm.RunAsync("exec", name, "--", "python3", "-c", Runner, code);
        Assert.True(r.ExitCode == 0, $"the kernel code failed: {r}");
        return r.Stdout;
    }

    /// <summary>A minimal pure-Python wheel (<see cref="TestWheels.Build"/>).</summary>
    public static byte[] Wheel(string distribution, string version) => TestWheels.Build(distribution, version);
}
