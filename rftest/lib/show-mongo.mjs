// show-mongo.mjs: reads back what rfboot wrote to MongoDB for an rftest demo (RouteFlow's `rfconfig` rows and
// rfboot's `<prefix>vms` records), independently of rfboot's own code, with the official driver.
//
//   node rftest/lib/show-mongo.mjs table    [--dpids 5,6,7,8] [--json]
//   node rftest/lib/show-mongo.mjs progress --dpids 5,6,7,8 [--until ready|running] [--timeout 300] [--require-join]
//   node rftest/lib/show-mongo.mjs clear    --dpids 5,6,7,8    (deletes those rows and records)
//   node rftest/lib/show-mongo.mjs reset    [--keep-state]     (the demo's lab database, as RouteFlow's rftest
//                                         does: drops rftable, rfconfig, rfstats and both IPC channels, and
//                                         rfboot's own <prefix>* collections unless --keep-state)
// Common options: --uri mongodb://127.0.0.1:27017 --db db --prefix rfboot_ --since <epoch ms>
// `progress` prints one line per lifecycle step of each datapath's record (joined, defined, started, ready,
// left, errors) and exits 0 once every dpid reached --until, 1 on timeout. With --require-join a record counts
// only once its switch joined at or after --since (a record still saying "ready" from an earlier rfboot does
// not). Exit 2 on bad usage.
import console from "node:console";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { MongoClient } from "mongodb";

const USAGE =
  "usage: show-mongo.mjs table|progress|clear|reset [--dpids 5,6] [--uri U] [--db D] [--prefix P] [--json] [--keep-state]";

function parseArgs(argv) {
  const opts = {
    cmd: argv[0],
    uri: process.env.RFBOOT_MONGO_URI ?? "mongodb://127.0.0.1:27017",
    db: "db",
    prefix: "rfboot_",
    dpids: [],
    json: false,
    until: "ready",
    timeout: 300,
    since: Date.now(),
    requireJoin: false,
    keepState: false,
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) usage(`${a} needs a value`);
      return x;
    };
    if (a === "--uri") opts.uri = v();
    else if (a === "--db") opts.db = v();
    else if (a === "--prefix") opts.prefix = v();
    else if (a === "--dpids") opts.dpids = v().split(",").filter(Boolean).map(decimalDpid);
    else if (a === "--json") opts.json = true;
    else if (a === "--require-join") opts.requireJoin = true;
    else if (a === "--keep-state") opts.keepState = true;
    else if (a === "--until") opts.until = v();
    else if (a === "--timeout") opts.timeout = Number(v());
    else if (a === "--since") opts.since = Number(v());
    else usage(`unknown option ${a}`);
  }
  if (!["table", "progress", "clear", "reset"].includes(opts.cmd))
    usage(`unknown command ${opts.cmd ?? "(none)"}`);
  if (!["ready", "running"].includes(opts.until)) usage("--until must be ready or running");
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage("--timeout must be a positive number");
  if ((opts.cmd === "progress" || opts.cmd === "clear") && opts.dpids.length === 0)
    usage(`${opts.cmd} needs --dpids`);
  return opts;
}

function usage(msg) {
  console.error(`show-mongo: ${msg}\n${USAGE}`);
  process.exit(2);
}

/** decimalDpid accepts 5, 0x99 or 16 hex digits and returns RouteFlow's decimal string. */
function decimalDpid(s) {
  try {
    if (/^0x[0-9a-f]+$/i.test(s)) return BigInt(s).toString(10);
    if (/^[0-9a-f]{16}$/i.test(s)) return BigInt(`0x${s}`).toString(10);
    if (/^[0-9]+$/.test(s)) return BigInt(s).toString(10);
  } catch {
    // fall through to the usage error
  }
  return usage(`bad dpid ${s} (decimal, 0x.. or 16 hex digits)`);
}

function hex16(dec) {
  return BigInt(dec).toString(16).padStart(16, "0");
}

function pad(s, n) {
  s = String(s ?? "");
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

function numericOrder(a, b, ...keys) {
  for (const k of keys) {
    const x = BigInt(a[k] || "0");
    const y = BigInt(b[k] || "0");
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function vmIdMac(vmId) {
  try {
    const h = BigInt(vmId).toString(16).padStart(12, "0");
    return h.match(/../g).join(":");
  } catch {
    return "?";
  }
}

async function table(db, opts) {
  const filter = opts.dpids.length ? { dp_id: { $in: opts.dpids } } : {};
  const rows = (
    await db
      .collection("rfconfig")
      .find(filter, { projection: { _id: 0 } })
      .toArray()
  ).sort((a, b) => numericOrder(a, b, "dp_id", "dp_port", "vm_id", "vm_port"));
  const vfilter = opts.dpids.length ? { dpid: { $in: opts.dpids } } : {};
  const vms = (await db.collection(`${opts.prefix}vms`).find(vfilter).toArray()).sort((a, b) =>
    numericOrder(a, b, "dpid"),
  );
  if (opts.json) {
    console.log(JSON.stringify({ rfconfig: rows, vms }, null, 2));
    return;
  }
  console.log(`rfconfig (${opts.db}.rfconfig, ${rows.length} rows)`);
  console.log(
    `  ${pad("vm_id", 16)}${pad("(mac)", 19)}${pad("vm_port", 9)}${pad("ct_id", 7)}${pad("dp_id", 8)}dp_port`,
  );
  for (const r of rows) {
    console.log(
      `  ${pad(r.vm_id, 16)}${pad(vmIdMac(r.vm_id), 19)}${pad(r.vm_port, 9)}${pad(r.ct_id, 7)}${pad(r.dp_id, 8)}${r.dp_port}`,
    );
  }
  console.log(`rfboot records (${opts.db}.${opts.prefix}vms, ${vms.length})`);
  console.log(
    `  ${pad("dpid", 18)}${pad("vm", 8)}${pad("state", 10)}${pad("host", 10)}${pad("hypervisor", 11)}ready at`,
  );
  for (const v of vms) {
    const ready = v.readyAt instanceof Date ? v.readyAt.toISOString() : "";
    console.log(
      `  ${pad(v.dpidHex ?? hex16(v.dpid), 18)}${pad(v.vmName, 8)}${pad(v.state, 10)}${pad(v.host, 10)}${pad(v.hypervisor, 11)}${ready}`,
    );
    if (v.lastError) console.log(`    last error: ${v.lastError.kind}: ${v.lastError.message}`);
  }
}

const STEPS = [
  ["joinedAt", "switch joined"],
  ["definedAt", "VM defined"],
  ["startedAt", "VM started"],
  ["readyAt", "VM ready"],
  ["leftAt", "switch left"],
];

async function progress(db, opts) {
  const coll = db.collection(`${opts.prefix}vms`);
  const seen = new Map();
  const deadline = Date.now() + opts.timeout * 1000;
  const joined = (v) =>
    !opts.requireJoin || (v.joinedAt instanceof Date && v.joinedAt.getTime() >= opts.since);
  // A join does not change the record's state: right after it, "ready" may still be the previous rfboot's
  // word. With --require-join, ready counts once readiness was confirmed for this join (readyAt >= joinedAt).
  const readyNow = (v) =>
    v.state === "ready" &&
    (!opts.requireJoin ||
      (v.readyAt instanceof Date &&
        v.joinedAt instanceof Date &&
        v.readyAt.getTime() >= v.joinedAt.getTime()));
  const done = (v) => joined(v) && (readyNow(v) || (opts.until === "running" && v.state === "running"));
  const rel = (d) => `t+${((d.getTime() - opts.since) / 1000).toFixed(1)}s`;
  let last = [];
  while (Date.now() < deadline) {
    try {
      last = await coll.find({ dpid: { $in: opts.dpids } }).toArray();
    } catch (e) {
      console.log(`  mongo: ${e.message} (retrying)`);
      await sleep(1000);
      continue;
    }
    // Steps seen in this poll, printed in time order across all VMs.
    const lines = [];
    for (const v of last) {
      const name = v.vmName ?? "?";
      const key = v.dpid;
      const prev = seen.get(key) ?? { steps: new Set(), state: "", error: "" };
      for (const [field, label] of STEPS) {
        const at = v[field];
        const stamp = at instanceof Date ? at.getTime() : undefined;
        // A step counts once per timestamp: a rejoin (new joinedAt) is reported again.
        if (stamp !== undefined && stamp >= opts.since - 1000 && !prev.steps.has(`${field}@${stamp}`)) {
          prev.steps.add(`${field}@${stamp}`);
          lines.push([stamp, `  ${rel(at)} ${label}: dpid ${v.dpidHex ?? hex16(v.dpid)} -> ${name}`]);
        }
      }
      // A record last changed before --since (an earlier run's) is remembered, not reported as a change.
      const stale = !prev.state && v.updatedAt instanceof Date && v.updatedAt.getTime() < opts.since - 1000;
      if (v.state !== prev.state && !stale) {
        lines.push([Date.now(), `  state ${name}: ${prev.state || "-"} -> ${v.state}`]);
      }
      prev.state = v.state;
      const err = v.lastError ? `${v.lastError.kind}: ${v.lastError.message}` : "";
      if (err && err !== prev.error) lines.push([Date.now(), `  error ${name}: ${err}`]);
      prev.error = err;
      seen.set(key, prev);
    }
    lines.sort((a, b) => a[0] - b[0]);
    for (const [, line] of lines) console.log(line);
    if (opts.dpids.every((d) => last.some((v) => v.dpid === d && done(v)))) return 0;
    await sleep(500);
  }
  const states = opts.dpids.map((d) => {
    const v = last.find((x) => x.dpid === d);
    if (!v) return `${d}=no record`;
    const why = !joined(v)
      ? " (not joined since)"
      : v.state === "ready" && !readyNow(v)
        ? " (before this join)"
        : "";
    return `${d}=${v.state}${why}`;
  });
  console.log(`  timeout after ${opts.timeout}s waiting for ${opts.until}: ${states.join(" ")}`);
  return 1;
}

async function clear(db, opts) {
  const a = await db.collection("rfconfig").deleteMany({ dp_id: { $in: opts.dpids } });
  const b = await db.collection(`${opts.prefix}vms`).deleteMany({ dpid: { $in: opts.dpids } });
  console.log(`cleared ${a.deletedCount} rfconfig rows, ${b.deletedCount} rfboot records`);
}

/** ROUTEFLOW_LAB_COLLECTIONS are what RouteFlow's own rftest drops at start and on Ctrl-C. */
const ROUTEFLOW_LAB_COLLECTIONS = [
  "rftable",
  "rfconfig",
  "rfstats",
  "rfclient<->rfserver",
  "rfserver<->rfproxy",
];

async function reset(db, opts) {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  const drop = names.filter(
    (n) => ROUTEFLOW_LAB_COLLECTIONS.includes(n) || (!opts.keepState && n.startsWith(opts.prefix)),
  );
  for (const n of drop) await db.collection(n).drop();
  const kept = opts.keepState ? names.filter((n) => n.startsWith(opts.prefix)) : [];
  console.log(
    `reset ${opts.db}: dropped ${drop.length ? drop.join(", ") : "nothing (already empty)"}` +
      (kept.length ? `; kept rfboot's ${kept.join(", ")} (--keep-state)` : ""),
  );
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const client = new MongoClient(opts.uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    const db = client.db(opts.db);
    if (opts.cmd === "table") await table(db, opts);
    else if (opts.cmd === "clear") await clear(db, opts);
    else if (opts.cmd === "reset") await reset(db, opts);
    else return await progress(db, opts);
    return 0;
  } finally {
    await client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`show-mongo: ${e.message} (is the MongoDB-wire server up? rftest/lib/lab.sh lab_mongo)`);
    process.exit(1);
  },
);
