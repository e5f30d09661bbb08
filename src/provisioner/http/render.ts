/**
 * The live page: one self-contained HTML document (inline CSS, a few lines of inline JS, an inline SVG), so
 * that it works on a management network without internet. The server renders the sections from a snapshot;
 * the page's script replaces them with each rendering pushed on `/events` and keeps the ages ticking. Every
 * value from the outside (names, errors, event details) goes through `esc`.
 */
import type { DatapathView, HostView, LiveSnapshot, ReadyReport } from "./snapshot.js";

/** esc makes text safe inside HTML text and double-quoted attributes. */
export function esc(s: unknown): string {
  return String(s)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** since renders a time as an age the page's script keeps current (`data-since`). */
function since(t: string | undefined): string {
  return t ? `<time data-since="${esc(t)}" datetime="${esc(t)}">${esc(t)}</time>` : "-";
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function cls(s: string): string {
  return s.replace(/[^a-z0-9-]/gi, "-").toLowerCase();
}

function table(head: readonly string[], rows: readonly string[][], empty: string, id: string): string {
  if (rows.length === 0) return `<p class="empty" id="${id}">${esc(empty)}</p>`;
  return (
    `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("") +
    "</tbody></table>"
  );
}

function datapathRow(d: DatapathView): string[] {
  return [
    `<code>${esc(d.dpid)}</code>`,
    `<span class="sw ${d.switch}">${esc(d.switch)}</span>${d.peer ? ` <small>${esc(d.peer)}</small>` : ""}`,
    esc(d.vm ?? "-"),
    esc(d.host ?? "-"),
    `<span class="st ${cls(d.state)}">${esc(d.state)}</span>` +
      (d.prewarming
        ? ` <small class="prewarm">booting for prewarm on ${esc(d.prewarming.host)} for ${since(d.prewarming.since)}</small>`
        : "") +
      (d.prewarm
        ? ` <small class="prewarm">image ${since(d.prewarm.at)} old on ${esc(d.prewarm.host)}, ${d.prewarm.imageMiB} MiB</small>`
        : "") +
      (d.leavePending ? " <small>leaving</small>" : "") +
      (d.retryWaiting ? ` <small>retry #${d.attempts}</small>` : ""),
    since(d.since),
    `<span class="rd ${d.ready}">${esc(d.ready)}</span>${d.readyAt ? ` <small>${since(d.readyAt)}</small>` : ""}`,
    d.lastError ? `<span class="err">${esc(d.lastError)}</span> <small>${since(d.lastErrorAt)}</small>` : "",
  ];
}

function hostRow(h: HostView): string[] {
  const reach =
    h.reachable === undefined
      ? `<span class="rd no">not probed</span>`
      : h.reachable
        ? `<span class="rd ready">reachable</span> <small>${h.latencyMs ?? 0} ms</small>`
        : `<span class="rd no">unreachable</span> <small>${esc(h.error ?? "")}</small>`;
  const mem =
    h.memoryMiB !== undefined
      ? `${h.memoryInUseMiB ?? "?"} / ${h.memoryMiB} MiB`
      : h.memoryInUseMiB !== undefined
        ? `${h.memoryInUseMiB} MiB`
        : "-";
  return [
    esc(h.name),
    `<small>${esc(h.uri)}</small>`,
    reach,
    `${h.vms} / ${h.maxVms}` +
      (h.prewarmed > 0
        ? ` <small class="prewarm">${h.prewarmed} prewarmed, ${h.prewarmImagesMiB} MiB</small>`
        : ""),
    String(h.capacityLeft),
    h.running !== undefined ? String(h.running) : "-",
    mem,
    since(h.probedAt),
  ];
}

/**
 * topology draws switches -> VMs -> hosts, with every VM's data interfaces on dp0 (RouteFlow's virtual
 * switch, the bridge the VMs' eth1..N are plugged into). Connected switches and reachable hosts are drawn
 * solid, others dashed.
 */
export function topology(s: LiveSnapshot): string {
  const dps = s.datapaths.filter((d) => d.vm || d.switch === "connected");
  const rowH = 44;
  const rows = Math.max(dps.length, s.hosts.length, 1);
  const h = rows * rowH + 80;
  const w = 760;
  const xs = { sw: 20, vm: 280, host: 560 };
  const bw = 180;
  const bh = 30;
  const y = (i: number) => 20 + i * rowH;
  const hostIndex = new Map(s.hosts.map((x, i) => [x.name, i]));
  const parts: string[] = [];
  const dp0Y = h - 40;
  dps.forEach((d, i) => {
    const up = d.switch === "connected";
    parts.push(
      `<g class="node switch ${up ? "up" : "down"}" data-dpid="${esc(d.dpid)}"><rect x="${xs.sw}" y="${y(i)}" width="${bw}" height="${bh}" rx="4"/>` +
        `<text x="${xs.sw + 8}" y="${y(i) + 20}">${esc(d.dpid)}</text></g>`,
    );
    if (!d.vm) return;
    parts.push(
      `<line class="edge ${up ? "up" : "down"}" x1="${xs.sw + bw}" y1="${y(i) + bh / 2}" x2="${xs.vm}" y2="${y(i) + bh / 2}"/>`,
      `<g class="node vm ${cls(d.state)}"><rect x="${xs.vm}" y="${y(i)}" width="${bw}" height="${bh}" rx="4"/>` +
        `<text x="${xs.vm + 8}" y="${y(i) + 20}">${esc(d.vm)} (${esc(d.state)})</text></g>`,
      `<line class="edge dp0" x1="${xs.vm + bw / 2}" y1="${y(i) + bh}" x2="${xs.vm + bw / 2}" y2="${dp0Y}"/>`,
    );
    const hi = d.host !== undefined ? hostIndex.get(d.host) : undefined;
    if (hi !== undefined)
      parts.push(
        `<line class="edge placed" x1="${xs.vm + bw}" y1="${y(i) + bh / 2}" x2="${xs.host}" y2="${y(hi) + bh / 2}"/>`,
      );
  });
  s.hosts.forEach((x, i) => {
    const state = x.reachable === false ? "down" : x.reachable ? "up" : "unknown";
    parts.push(
      `<g class="node host ${state}"><rect x="${xs.host}" y="${y(i)}" width="${bw}" height="${bh}" rx="4"/>` +
        `<text x="${xs.host + 8}" y="${y(i) + 20}">${esc(x.name)} ${x.vms}/${x.maxVms}</text></g>`,
    );
  });
  parts.push(
    `<g class="node dp0"><rect x="${xs.vm - 20}" y="${dp0Y}" width="${bw + 40}" height="24" rx="4"/>` +
      `<text x="${xs.vm - 12}" y="${dp0Y + 17}">dp0 (VM data interfaces)</text></g>`,
  );
  return (
    `<svg id="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="switches, VMs and hosts">` +
    `<text class="col" x="${xs.sw}" y="12">switches</text><text class="col" x="${xs.vm}" y="12">VMs</text><text class="col" x="${xs.host}" y="12">hosts</text>` +
    parts.join("") +
    "</svg>"
  );
}

/** sections renders everything the page shows of one snapshot (replaced as a whole on each push). */
export function sections(s: LiveSnapshot, ready: ReadyReport): string {
  const store = s.store.online
    ? `MongoDB reachable, ${s.store.pending} writes pending`
    : `MongoDB unreachable: ${s.store.pending} writes buffered` +
      (s.store.oldestPendingAgeSeconds !== undefined
        ? `, oldest ${Math.round(s.store.oldestPendingAgeSeconds)}s`
        : "");
  const summary =
    `<p id="summary"><span class="rd ${ready.ready ? "ready" : "no"}">${ready.ready ? "ready" : "not ready"}</span> ` +
    `${plural(s.counts.connected, "switch", "switches")} connected, ${plural(s.counts.leases, "lease", "leases")} held; ${esc(store)}` +
    (s.controller
      ? `; OpenFlow ${esc(s.controller.mode)} ${esc(s.controller.host)}:${s.controller.port}`
      : "") +
    (s.store.readError ? `; <span class="err">${esc(s.store.readError)}</span>` : "") +
    "</p>" +
    [...ready.reasons, ...ready.notes].map((r) => `<p class="note">${esc(r)}</p>`).join("");
  return (
    summary +
    `<h2>Picture</h2>${topology(s)}` +
    `<h2>Datapaths</h2>` +
    table(
      ["DPID", "SWITCH", "VM", "HOST", "STATE", "AGE", "READY", "LAST ERROR"],
      s.datapaths.map(datapathRow),
      "no datapath configured or seen",
      "datapaths",
    ) +
    `<h2>rfconfig rows written by rfboot</h2>` +
    table(
      ["_id", "vm_id", "vm_port", "ct_id", "dp_id", "dp_port"],
      s.rfconfig.map((r) =>
        [r.id, r.vm_id, r.vm_port, r.ct_id, r.dp_id, r.dp_port].map((v) => `<code>${esc(v)}</code>`),
      ),
      "no rfconfig rows",
      "rfconfig",
    ) +
    `<h2>Hosts</h2>` +
    table(
      ["HOST", "URI", "REACHABILITY", "VMS", "LEFT", "ACTIVE DOMAINS", "MEMORY", "PROBED"],
      s.hosts.map(hostRow),
      "no hosts configured",
      "hosts",
    ) +
    `<h2>Recent events</h2>` +
    table(
      ["AGE", "DPID", "VM", "KIND", "DETAIL"],
      s.events.map((e) => [
        since(e.at),
        e.dpid ? `<code>${esc(e.dpid)}</code>` : "",
        esc(e.vm ?? ""),
        `<span class="kind">${esc(e.kind)}</span>`,
        esc(e.detail ?? ""),
      ]),
      "no events",
      "events",
    )
  );
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 .3em}h2{font-size:16px;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eee;font-weight:600}small{color:#666}code{font-size:12px}
.sw.connected,.rd.ready{color:#080}.sw.disconnected,.rd.no,.err{color:#b00}.sw.never{color:#888}.rd.waiting{color:#a60}
.st{font-weight:600}.note{color:#a60;margin:.2em 0}#conn{float:right;font-size:12px;color:#666}
svg{background:#fff;border:1px solid #ddd}svg text{font:12px system-ui,sans-serif}svg text.col{fill:#666}
.node rect{fill:#eef;stroke:#669}.node.switch.down rect,.node.host.down rect{fill:#fee;stroke:#b00;stroke-dasharray:4 3}
.st.prewarmed,.prewarm{color:#06c}
.node.vm.ready rect{fill:#efe;stroke:#080}.node.vm.prewarmed rect{fill:#eef6ff;stroke:#06c;stroke-dasharray:6 2}.node.vm.failed rect{fill:#fee;stroke:#b00}.node.dp0 rect{fill:#ffe;stroke:#aa6}
.edge{stroke:#669;stroke-width:1.5}.edge.down{stroke:#b00;stroke-dasharray:4 3}.edge.dp0{stroke:#aa6;stroke-dasharray:2 2}
`;

// The page's script: replace the sections with each push, keep ages current, show the connection state.
// The token, when the page was opened with `?token=`, is passed on to /events (EventSource sends no headers).
const JS = `
(function(){
  var q = new URLSearchParams(location.search).get("token");
  var conn = document.getElementById("conn"), live = document.getElementById("live");
  function age(ms){var s=Math.max(0,Math.round(ms/1000));return s<120?s+"s":s<7200?Math.round(s/60)+"m":s<172800?Math.round(s/3600)+"h":Math.round(s/86400)+"d";}
  function tick(){var now=Date.now();document.querySelectorAll("time[data-since]").forEach(function(t){t.textContent=age(now-Date.parse(t.getAttribute("data-since")));});}
  tick(); setInterval(tick, 1000);
  if (!window.EventSource) return;
  var es = new EventSource("events" + (q ? "?token=" + encodeURIComponent(q) : ""));
  es.onopen = function(){ conn.textContent = "live"; };
  es.onerror = function(){ conn.textContent = "reconnecting"; };
  es.onmessage = function(e){ var d = JSON.parse(e.data); live.innerHTML = d.html; document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates")||0)+1)); tick(); };
})();
`;

/** page renders the whole document for `/`. */
export function page(s: LiveSnapshot, ready: ReadyReport): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rfboot ${esc(s.instance)}</title>` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${CSS}</style></head>` +
    `<body data-updates="0"><span id="conn">loading</span><h1>rfboot <small>${esc(s.instance)}</small></h1>` +
    `<div id="live">${sections(s, ready)}</div><script>${JS}</script></body></html>`
  );
}
