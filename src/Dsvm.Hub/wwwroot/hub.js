// OpenDSVM hub web UI: plain JavaScript over the REST API (/api/v1) and its event stream.
"use strict";

// The session's CSRF secret is not in a readable cookie: the hub hands it to its own pages (same origin only).
let csrfSecret = null;
async function csrf() {
  if (csrfSecret === null) {
    const r = await fetch("/hub/csrf", { headers: { "Accept": "application/json" }, credentials: "same-origin" });
    csrfSecret = r.ok ? (await r.json()).csrf : "";
  }
  return csrfSecret;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-Dsvm-Csrf"] = await csrf();
  const response = await fetch("/api/v1" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  if (response.status === 401) { location.href = "/hub/login?next=%2Fhub%2F"; throw new Error("logged out"); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && (data.detail || data.title)) || response.statusText);
  return data;
}

const el = (tag, { dataset, ...props } = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset || {});
  for (const c of children) node.append(c);
  return node;
};

function showError(message) {
  const e = document.getElementById("error");
  e.textContent = message;
  e.hidden = !message;
}

let sizes = [];
let me = null;

function actions(w, refresh) {
  const cell = el("td", { className: "actions" });
  const act = (label, fn, cls = "secondary") => el("button", {
    type: "button", className: cls, textContent: label,
    onclick: async () => { showError(""); try { await fn(); } catch (e) { showError(e.message); } await refresh(); },
  });
  const base = `/workspaces/${encodeURIComponent(w.owner)}/${encodeURIComponent(w.name)}`;
  if (w.state === "running") {
    cell.append(el("a", { href: w.url, target: "_blank", rel: "noopener", className: "button open", textContent: "Open" }));
    cell.append(act("Stop", () => api("POST", base + "/stop")));
    const select = el("select", { className: "resize", ariaLabel: "new size" });
    for (const s of sizes) select.append(el("option", { value: s.name, textContent: s.name, selected: s.name === w.size }));
    cell.append(select, act("Resize", () => api("POST", base + "/resize", { size: select.value })));
  } else if (w.state === "stopped" || w.state === "failed") {
    cell.append(act("Start", () => api("POST", base + "/start")));
  }

  cell.append(act("Delete", async () => {
    if (confirm(`Delete ${w.name}? Its home is kept.`)) await api("DELETE", base);
  }, "danger"));
  return cell;
}

function row(w, withOwner, refresh) {
  const tr = el("tr", { dataset: { name: w.name, owner: w.owner } });
  if (withOwner) tr.append(el("td", { textContent: w.owner }));
  tr.append(el("td", { textContent: w.name }), el("td", { textContent: w.environment }),
    el("td", { textContent: w.size + (w.cpuFallback ? " (CPU)" : "") }),
    el("td", { className: "state " + w.state, textContent: w.state, title: w.lastError || "" }),
    actions(w, refresh));
  return tr;
}

async function refresh() {
  const mine = await api("GET", "/workspaces");
  const body = document.querySelector("#workspaces tbody");
  body.replaceChildren(...mine.map(w => row(w, false, refresh)));
  document.getElementById("empty").hidden = mine.length > 0;
  if (me && me.admin) {
    const all = await api("GET", "/workspaces?all=true");
    document.querySelector("#all tbody").replaceChildren(...all.map(w => row(w, true, refresh)));
    await refreshClasses();
    await refreshHomes();
    const users = await api("GET", "/users");
    document.querySelector("#users tbody").replaceChildren(...users.map(u => el("tr", {},
      el("td", { textContent: u.name }), el("td", { textContent: u.admin ? "yes" : "" }), el("td", { textContent: u.group || "" }),
      el("td", { textContent: `${u.quota.maxWorkspaces ?? "∞"} ws, ${u.quota.maxVcpus ?? "∞"} vCPU, ${u.quota.maxGpus ?? "∞"} GPU` }),
      el("td", {}, u.name === me.name ? "" : el("button", { type: "button", className: "danger", textContent: "Delete",
        onclick: async () => { if (confirm(`Delete user ${u.name}?`)) { await api("DELETE", "/users/" + encodeURIComponent(u.name)); await refresh(); } } })))));
  }
}

async function refreshHomes() {
  const homes = await api("GET", "/homes?orphaned=true");
  document.getElementById("homes-empty").hidden = homes.length > 0;
  document.querySelector("#homes tbody").replaceChildren(...homes.map(h => el("tr", { dataset: { id: h.id } },
    el("td", { textContent: h.id }), el("td", { textContent: h.owner || "" }), el("td", { textContent: h.name }),
    el("td", { textContent: h.orphanedAt ? new Date(h.orphanedAt).toLocaleString() : "" }),
    el("td", { className: "actions" },
      el("button", { type: "button", className: "secondary", textContent: "Give to user…",
        onclick: async () => {
          const user = prompt(`Give home ${h.id} (${h.owner}/${h.name}) to which user?`);
          if (!user) return;
          const workspace = prompt("Attached to their workspace named:", h.name);
          if (!workspace) return;
          showError("");
          try { await api("POST", `/homes/${encodeURIComponent(h.id)}/reassign`, { user, workspace }); } catch (e) { showError(e.message); }
          await refresh();
        } }),
      el("button", { type: "button", className: "danger", textContent: "Purge",
        onclick: async () => {
          if (!confirm(`Delete home ${h.id} of ${h.owner}/${h.name} with all its files? This cannot be undone.`)) return;
          showError("");
          try { await api("DELETE", "/homes/" + encodeURIComponent(h.id)); } catch (e) { showError(e.message); }
          await refresh();
        } })))));
}

async function refreshClasses() {
  const classes = await api("GET", "/classes");
  const secret = await csrf();
  document.querySelector("#classes tbody").replaceChildren(...classes.map(c => el("tr", { dataset: { name: c.name } },
    el("td", { textContent: c.name }), el("td", { textContent: String(c.members) }), el("td", { textContent: String(c.running) }),
    el("td", { className: "actions" },
      el("a", {
        className: "button secondary download", textContent: "Download credentials (new passwords)",
        href: `/api/v1/classes/${encodeURIComponent(c.name)}/credentials.csv?csrf=${encodeURIComponent(secret)}`, download: `${c.name}-credentials.csv`,
        onclick: ev => { if (!confirm(`Issue new passwords to every member of ${c.name}? Their current passwords stop working.`)) ev.preventDefault(); },
      }),
      el("button", { type: "button", className: "danger", textContent: "Tear down",
        onclick: async () => {
          if (!confirm(`Tear down ${c.name}: delete its ${c.members} users and their workspaces? Homes are kept.`)) return;
          showError("");
          try { await api("DELETE", "/classes/" + encodeURIComponent(c.name)); } catch (e) { showError(e.message); }
          await refresh();
        } })))));
}

function showCredentials(created) {
  const box = document.getElementById("class-credentials");
  document.getElementById("class-credentials-name").textContent = created.class;
  box.querySelector("tbody").replaceChildren(...created.users.map(u => el("tr", {},
    el("td", { textContent: u.name }), el("td", { textContent: u.password }), el("td", { textContent: location.origin + u.url }))));
  box.hidden = false;
}

async function main() {
  me = await api("GET", "/me");
  document.getElementById("me").textContent = me.name + (me.admin ? " (admin)" : "");
  document.getElementById("admin").hidden = !me.admin;
  const [envs, sz] = await Promise.all([api("GET", "/environments"), api("GET", "/sizes")]);
  sizes = sz;
  const form = document.getElementById("start");
  form.environment.replaceChildren(...envs.map(e => el("option", { value: e.name, textContent: `${e.name}: ${e.description}` })));
  form.size.replaceChildren(...sizes.map(s => el("option", {
    value: s.name, textContent: `${s.name} (${s.vcpus} vCPU, ${s.memoryGiB} GiB${s.gpus ? `, ${s.gpus} GPU` : ""})`, selected: s.name === "small",
  })));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    showError("");
    document.getElementById("progress").textContent = "";
    try {
      await api("POST", "/workspaces", { name: form.name.value, environment: form.environment.value, size: form.size.value });
      form.reset();
    } catch (e) { showError(e.message); }
    await refresh();
  });
  document.getElementById("add-user").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = ev.target;
    try { await api("POST", "/users", { name: f.name.value, password: f.password.value, admin: f.admin.checked }); f.reset(); }
    catch (e) { showError(e.message); }
    await refresh();
  });
  const classForm = document.getElementById("add-class");
  classForm.environment.replaceChildren(...[...form.environment.options].map(o => el("option", { value: o.value, textContent: o.textContent })));
  classForm.size.replaceChildren(...[...form.size.options].map(o => el("option", { value: o.value, textContent: o.textContent, selected: o.value === "small" })));
  classForm.addEventListener("submit", async ev => {
    ev.preventDefault();
    showError("");
    try {
      const created = await api("POST", "/classes", {
        name: classForm.name.value, environment: classForm.environment.value, size: classForm.size.value, count: Number(classForm.count.value),
      });
      showCredentials(created);
      classForm.name.value = "";
    } catch (e) { showError(e.message); }
    await refresh();
  });
  document.getElementById("class-credentials-hide").addEventListener("click", () => {
    const box = document.getElementById("class-credentials");
    box.querySelector("tbody").replaceChildren();
    box.hidden = true;
  });
  document.getElementById("logout").addEventListener("click", async () => { await api("POST", "/logout"); location.href = "/hub/login"; });

  const events = new EventSource("/api/v1/events");
  events.addEventListener("workspace", async m => {
    const e = JSON.parse(m.data);
    const log = document.getElementById("progress");
    log.textContent += `${new Date(e.at).toLocaleTimeString()} ${e.owner}/${e.name}: ${e.message}\n`;
    try { await refresh(); } catch (err) { showError(err.message); }
  });
  // The browser reconnects with Last-Event-ID and gets what it missed; "reset" means too much was missed: reload the lists.
  events.addEventListener("reset", async () => { try { await refresh(); } catch (err) { showError(err.message); } });
  await refresh();
}

main().catch(e => showError(e.message));
