// The inspector page. Everything shown comes from requests through the tunnel (untrusted HTML):
// it is only ever set as text (textContent), never parsed as markup.
"use strict";

let selected = null;
let latest = [];
let rendered = "";  // what the detail pane shows, to redraw it only when it changes
let replayNote = null;  // {id, text}: the outcome of the last Replay, shown with the new entry

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function statusText(item) {
  if (item.client_status !== null && item.client_status !== item.status) {
    return item.status === null ? String(item.client_status) : `${item.client_status} (app ${item.status})`;
  }
  return item.status === null ? "-" : String(item.status);
}

function statusClass(item) {
  const status = item.client_status ?? item.status;
  return status === null || status >= 500 ? "bad" : "ok";
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function headersTable(headers) {
  const table = el("table");
  for (const [name, value] of headers) {
    const row = el("tr");
    row.append(el("td", name), el("td", value));
    table.append(row);
  }
  return table;
}

function body(part) {
  if (part.size === 0) return el("p", "(no body)");
  if (part.body.binary) return el("p", `(binary, ${size(part.size)})`);
  const text = part.body.truncated ? `${part.body.text}\n... (${size(part.size)} in all)` : pretty(part.body.text);
  return el("pre", text, "body");
}

function pretty(text) {
  // JSON indented, as ngrok's inspector shows it; anything else exactly as received.
  if (!/^\s*[[{]/.test(text)) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (error) {
    return text;
  }
}

function renderList() {
  const list = document.getElementById("list");
  list.replaceChildren();
  for (const item of latest) {
    const row = el("li", undefined, item.id === selected ? "selected" : "");
    row.dataset.id = item.id;
    row.append(
      el("span", item.method, "method"),
      el("span", item.target, "target"),
      el("span", statusText(item), `status ${statusClass(item)}`),
      el("span", `${item.duration_ms} ms`, "duration"),
    );
    row.addEventListener("click", () => { selected = item.id; renderList(); renderDetail(); });
    list.append(row);
  }
}

function renderDetail() {
  const detail = document.getElementById("detail");
  const item = latest.find((x) => x.id === selected);
  if (!item) return;
  const key = JSON.stringify([item, replayNote]);
  if (key === rendered) return;
  rendered = key;
  detail.replaceChildren();
  const title = el("h2");
  title.append(el("span", `${item.method} `), el("span", item.target, "target"));
  const meta = el("p", `${new Date(item.started * 1000).toLocaleTimeString()} · ` +
    `status ${statusText(item)} · ${item.duration_ms} ms · ${size(item.response.size)}` +
    (item.replay_of ? ` · replay of #${item.replay_of}` : "") + (item.error ? ` · ${item.error}` : ""));
  meta.id = "meta";
  const replay = el("button", "Replay");
  replay.id = "replay";
  replay.disabled = !item.replayable;
  replay.title = item.replayable ? "Send this request to the local app again" : "body too large to keep";
  const result = el("p", replayNote && replayNote.id === item.id ? replayNote.text : "");
  result.id = "replay-result";
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    const answer = await fetch(`/api/requests/${item.id}/replay`, { method: "POST", headers: { "X-Inspector": "replay" } });
    const data = await answer.json();
    replay.disabled = false;
    if (!answer.ok) { result.textContent = data.error; return; }
    replayNote = { id: data.id, text: `Replayed #${item.id}: ${statusText(data)} in ${data.duration_ms} ms` };
    selected = data.id;
    await refresh();
  });
  const request = el("div");
  request.id = "request";
  request.append(el("h3", "Request"), headersTable(item.request.headers), body(item.request));
  const response = el("div");
  response.id = "response";
  response.append(el("h3", "Response"), headersTable(item.response.headers), body(item.response));
  detail.append(title, meta, replay, result, request, response);
}

async function refresh() {
  try {
    const answer = await fetch("/api/requests", { cache: "no-store" });
    latest = (await answer.json()).requests;
  } catch (error) {
    return; // the agent stopped; keep what is shown
  }
  if (selected === null && latest.length) selected = latest[0].id;
  renderList();
  renderDetail();
}

refresh();
setInterval(refresh, 1000);
