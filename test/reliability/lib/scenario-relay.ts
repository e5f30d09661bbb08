/**
 * Fault: the upstream controller (rfproxy) restarts while rfboot relays two real Open vSwitch bridges to it.
 * Expected: the switches reconnect; every session the upstream sees is clean (it starts with the switch's
 * HELLO, decodes as a whole OpenFlow stream, carries none of rfboot's own probe traffic, and reports the
 * bridge's dpid); rfboot keeps the datapaths known and their VMs running (no restart, leave policy idle).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MONGO_URI } from "../../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";
import type { Daemon } from "../../../src/provisioner/index.js";
import { CapturedLog, Db, configYaml, datapathLines, domains, parse, startDaemon, tag } from "./lab.js";
import { RecordingUpstream } from "./upstream.js";
import { addSwitch } from "../../helpers/real.js";
import { Checks, freePort, shOk, sleep, until, type ScenarioResult } from "./util.js";

/** RESERVED_XID_BASE: rfboot's own requests in relay mode use xids 0xf0f00000.. (relay.ts). */
const RESERVED_XID_BASE = 0xf0f00000;

/** upstreamRestart: two bridges relayed; the upstream is down for downMs. */
export async function upstreamRestart(downMs = 3000): Promise<ScenarioResult> {
  const t0 = performance.now();
  const T = tag();
  const dir = mkdtempSync(join(tmpdir(), "rfbt-rel-up-"));
  const dbName = `rfbt_rel_up_${T}`;
  const prefix = `rfbtu${T}`;
  const bridges = [`rfbtua${T}`, `rfbtub${T}`];
  const c = new Checks();
  const figures: Record<string, number | string> = { upstreamDownMs: downMs };
  const mongo = await Db.open(MONGO_URI, dbName);
  let host: LibvirtTestHost | undefined;
  let daemon: Daemon | undefined;
  let upstream: RecordingUpstream | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    host = await startLibvirtHost(`rfbt-ru${T}`);
    const port = await freePort();
    upstream = new RecordingUpstream(await freePort());
    await upstream.start();
    const dps = datapathLines(2, 0x7e1000n, prefix);
    const hexes = dps.map((d) => d.dpid.toString(16).padStart(16, "0"));
    const cfg = parse(
      configYaml({
        stateDir: join(dir, "state"),
        port,
        mongoUri: MONGO_URI,
        database: dbName,
        hosts: [{ name: "h1", uri: host.testUri }],
        datapaths: dps,
        mode: "relay",
        upstreamPort: upstream.port,
        policies: "{ leave: { action: destroy, graceSeconds: 20 } }",
      }),
    );
    const log = new CapturedLog();
    daemon = await startDaemon(cfg, log);
    const d = daemon;
    const ensured: { vm: string; action: string }[] = [];
    const left: string[] = [];
    d.on("ensured", (e) => ensured.push({ vm: e.vm, action: e.action }));
    d.on("left", (e) => left.push(e.vm));
    for (const [i, br] of bridges.entries()) await addSwitch(br, hexes[i]!, port);
    const up = upstream;
    const seen = (gen: number) =>
      new Set(
        up.sessions
          .filter((s) => s.generation === gen && s.dpid !== undefined)
          .map((s) => s.dpid!.toString(16)),
      );
    await until(
      "both VMs running and both sessions relayed",
      async () => ensured.length >= 2 && seen(1).size === 2,
      30_000,
    );
    // Sample how long each datapath is unknown to rfboot.
    const absent = new Map<string, { since?: number; max: number }>(hexes.map((h) => [h, { max: 0 }]));
    sampler = setInterval(() => {
      const now = performance.now();
      const known = new Set(d.connectedDatapaths());
      for (const [h, a] of absent) {
        if (!known.has(h)) a.since ??= now;
        else if (a.since !== undefined) {
          a.max = Math.max(a.max, now - a.since);
          a.since = undefined;
        }
      }
    }, 20);
    const leftBefore = log.find("datapath left").length;

    await upstream.stop();
    await sleep(downMs);
    await upstream.start();
    const upAt = performance.now();
    await until("both switches back in clean relayed sessions", () => seen(2).size === 2, 30_000, 50);
    figures.reconnectMs = Math.round(performance.now() - upAt);
    await until(
      "both datapaths known",
      () => hexes.every((h) => d.connectedDatapaths().includes(h)),
      20_000,
      50,
    );
    await sleep(1500);
    clearInterval(sampler);
    sampler = undefined;
    for (const a of absent.values())
      if (a.since !== undefined) a.max = Math.max(a.max, performance.now() - a.since);
    figures.maxUnknownMs = Math.round(Math.max(...[...absent.values()].map((a) => a.max)));
    figures.downsReported = log.find("datapath left").length - leftBefore;
    figures.upstreamSessions = upstream.sessions.length;

    const after = upstream.sessions.filter((s) => s.generation === 2);
    c.eq(
      "the switches reconnected to the restarted upstream",
      [...seen(2)].sort(),
      hexes.map((h) => BigInt(`0x${h}`).toString(16)).sort(),
    );
    const dirty = upstream.sessions.filter(
      (s) =>
        s.decodeError !== undefined ||
        (s.messages.length > 0 && s.messages[0]!.type !== "hello") ||
        s.messages.some((m) => m.xid >= RESERVED_XID_BASE && m.xid < RESERVED_XID_BASE + 0x100000),
    );
    c.eq(
      "every upstream session is clean (HELLO first, whole OpenFlow stream, no rfboot probe traffic)",
      dirty.length,
      0,
    );
    // rfboot's upstream probe (relay.ts: a TCP connect closed at once, before any byte) shows up as an empty
    // connection; every connection that carries data is a whole switch session.
    const carrying = after.filter((s) => s.messages.length > 0);
    figures.emptyProbeConnections = upstream.sessions.filter((s) => s.messages.length === 0).length;
    c.ok(
      "sessions after the restart start with the switch's HELLO",
      carrying.length >= 2 && carrying.every((s) => s.messages[0]?.type === "hello" && s.dpid !== undefined),
      `${carrying.length} sessions with data, ${after.length - carrying.length} empty probe connections`,
    );
    c.ok(
      "no partial frame left in sessions that ended",
      upstream.sessions.filter((s) => s.closedAt !== undefined).every((s) => s.leftover === 0),
      "leftover 0",
    );
    c.ok(
      "rfboot knows both datapaths at the end",
      hexes.every((h) => d.connectedDatapaths().includes(h)),
      d.connectedDatapaths().join(","),
    );
    c.eq(
      "VMs running, one per switch",
      [...(await domains(host.testUri, prefix)).values()],
      ["running", "running"],
    );
    c.eq("VMs started once (no restart)", ensured.filter((e) => e.action !== "adopted").length, 2);
    c.eq("leave policy never fired", left.length, 0);
  } finally {
    if (sampler) clearInterval(sampler);
    for (const br of bridges) await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
    await daemon?.stop();
    await upstream?.stop();
    if (host) await stopLibvirtHost(host);
    await mongo.drop();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    id: "upstream-restart",
    title: "the upstream controller (relay mode) restarts",
    injected: `scripted upstream (rfproxy's place) closes every session and stops listening for ${downMs / 1000} s; two real OVS bridges relayed`,
    checks: c.list,
    figures,
    durationMs: Math.round(performance.now() - t0),
  };
}
