/**
 * rftest's lab pieces on the real thing: dp0 and the management bridge (rftest/lib/rfnet.sh), the Mininet
 * rftest2/rftest1 topologies (dpids, RouteFlow's port numbers and wiring), RSTP making the looped mesh safe so
 * that pingall succeeds through a plain ovs-testcontroller, fail-over when a tree link goes down, the relay
 * path through `rfboot watch`, and a teardown that leaves nothing behind. rfboot's VM booting is not involved
 * (`--rfboot none|watch`); the end-to-end demo test covers it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, expect, it } from "vitest";
import { describeWith, REPO } from "../helpers/env.js";
import { alive, mininetShells, portOpen } from "../helpers/real.js";

// Private names and ports so that a demo or another test running on the machine is not disturbed.
const ENV = {
  ...process.env,
  LC_ALL: "C",
  RFNET_DP0: "rfbt-dp0",
  RFNET_MGMT_BRIDGE: "rfbt-mg0",
  RFNET_MGMT_CIDR: "192.169.251.1/24",
};
const UPSTREAM = 16633;
const LISTEN = 16653;
const LAB_DIR = process.env.RFBOOT_LAB_DIR ?? "/var/lib/rfboot-lab";

/** RouteFlow's rftest2 wiring (CPqD/RouteFlow rftest/topo-4sw-4host.py): switch port <-> switch port. */
const RFTEST2_LINKS: ReadonlyArray<readonly [string, string]> = [
  ["s5-eth2", "s6-eth2"],
  ["s6-eth3", "s8-eth2"],
  ["s8-eth3", "s7-eth2"],
  ["s7-eth3", "s5-eth3"],
  ["s5-eth4", "s8-eth4"],
];

interface PingAll {
  ok: boolean;
  sent: number;
  received: number;
  failed: string[];
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env: ENV, encoding: "utf8", timeout: 30_000 });
}

async function rftest(name: "rftest1" | "rftest2", args: string[], timeoutMs = 150_000) {
  return execa(join(REPO, "rftest", name), args, { env: ENV, reject: false, timeout: timeoutMs, all: true });
}

async function mn<T>(name: "rftest1" | "rftest2", ...words: string[]): Promise<T> {
  const r = await rftest(name, ["--mn", ...words], 60_000);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as T;
}

/** ofPorts reads the data ports (number -> name) of an OVS bridge with ovs-ofctl, LOCAL excluded. */
function ofPorts(br: string): { dpid: string; ports: Map<number, string> } {
  const out = sh("ovs-ofctl", ["-O", "OpenFlow13", "show", br]);
  const dpid = /dpid:([0-9a-f]{16})/.exec(out)?.[1] ?? "";
  const ports = new Map<number, string>();
  for (const m of out.matchAll(/^\s*(\d+)\(([^)]+)\):/gm)) ports.set(Number(m[1]), m[2] ?? "");
  return { dpid, ports };
}

function bridgeExists(br: string): boolean {
  try {
    execFileSync("ovs-vsctl", ["--timeout=5", "br-exists", br], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function linkNames(): string[] {
  return readdirSync("/sys/class/net");
}

/** blockedPorts counts (R)STP ports that are Alternate/Backup on a bridge (ovs-appctl rstp/show). */
function blockedPorts(br: string): number {
  const out = sh("ovs-appctl", ["rstp/show", br]);
  return out.split("\n").filter((l) => /^\s*\S+-eth\d+\s+(Alternate|Backup)\s+Discarding/.test(l)).length;
}

async function expectNothingLeft(
  name: "rftest1" | "rftest2",
  switches: string[],
  hosts: string[],
  pids: number[],
) {
  for (const s of switches) expect(bridgeExists(s), `bridge ${s}`).toBe(false);
  expect(bridgeExists("rfbt-dp0")).toBe(false);
  const links = linkNames();
  expect(links).not.toContain("rfbt-mg0");
  expect(links.filter((l) => switches.some((s) => l === s || l.startsWith(`${s}-eth`)))).toEqual([]);
  expect(mininetShells(hosts)).toEqual([]);
  for (const p of pids) expect(alive(p), `pid ${p}`).toBe(false);
  expect(await portOpen(UPSTREAM)).toBe(false);
  expect(await portOpen(LISTEN)).toBe(false);
  expect(sh("ip", ["netns", "list"])).not.toMatch(/\b(h[1-8]|s[5-8]|s99)\b/);
  expect(existsSync(join(LAB_DIR, name, "mininet.pid"))).toBe(false);
  expect(existsSync(join(LAB_DIR, name, "upstream.pid"))).toBe(false);
}

function pidOf(name: string, what: string): number {
  return Number(readFileSync(join(LAB_DIR, name, `${what}.pid`), "utf8").trim());
}

describeWith(["ovs", "mininet", "root"], "rftest lab: dp0, management bridge, Mininet topologies", () => {
  afterAll(async () => {
    await rftest("rftest2", ["--down"]);
    await rftest("rftest1", ["--down"]);
    execFileSync("bash", ["-c", `source ${REPO}/rftest/lib/rfnet.sh && rfnet_down`], { env: ENV });
  }, 120_000);

  it("rfnet_up creates dp0 (netdev, RouteFlow's dpid, secure) and the management bridge, idempotently", () => {
    const up = `source ${REPO}/rftest/lib/lab.sh && lab_ovs && source ${REPO}/rftest/lib/rfnet.sh && RFNET_DP0_CONTROLLER=tcp:127.0.0.1:${UPSTREAM} rfnet_up`;
    execFileSync("bash", ["-c", up], { env: ENV });
    const get = (col: string) => sh("ovs-vsctl", ["get", "bridge", "rfbt-dp0", col]).trim();
    expect(get("datapath_type")).toBe("netdev");
    expect(get("other-config:datapath-id")).toBe('"7266767372667673"');
    expect(get("protocols")).toBe("[OpenFlow10, OpenFlow13]");
    expect(get("fail_mode")).toBe("secure");
    expect(sh("ovs-vsctl", ["get-controller", "rfbt-dp0"]).trim()).toBe(`tcp:127.0.0.1:${UPSTREAM}`);
    const ctlRow = get("controller");
    expect(existsSync("/sys/class/net/rfbt-mg0/bridge")).toBe(true);
    const addrs = JSON.parse(sh("ip", ["-j", "addr", "show", "dev", "rfbt-mg0"])) as Array<{
      addr_info: Array<{ family: string; local: string; prefixlen: number }>;
    }>;
    expect(
      addrs[0]?.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
    ).toEqual(["192.169.251.1/24"]);
    // Again: nothing changes, and the controller row (its live session) is kept.
    execFileSync("bash", ["-c", up], { env: ENV });
    expect(get("controller")).toBe(ctlRow);
    expect(
      sh("ovs-vsctl", ["list-br"])
        .split("\n")
        .filter((b) => b === "rfbt-dp0"),
    ).toHaveLength(1);
    execFileSync("bash", ["-c", `source ${REPO}/rftest/lib/rfnet.sh && rfnet_down`], { env: ENV });
    expect(bridgeExists("rfbt-dp0")).toBe(false);
    expect(linkNames()).not.toContain("rfbt-mg0");
  });

  it("rftest2 without rfboot: dpids 5..8, RouteFlow's 14 ports, RSTP, pingall, fail-over, clean teardown", async () => {
    const t0 = Date.now();
    const r = await rftest("rftest2", ["--rfboot", "none", "--no-wait", "--upstream-port", String(UPSTREAM)]);
    expect(r.exitCode, r.all).toBe(0);
    const upSeconds = (Date.now() - t0) / 1000;

    const expected: Record<string, number> = { s5: 4, s6: 3, s7: 3, s8: 4 };
    let total = 0;
    for (const [sw, n] of Object.entries(expected)) {
      const { dpid, ports } = ofPorts(sw);
      expect(dpid).toBe(`000000000000000${sw.slice(1)}`);
      expect([...ports.keys()].sort()).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      for (const [no, name] of ports) expect(name).toBe(`${sw}-eth${no}`);
      total += ports.size;
    }
    expect(total).toBe(14);
    // Wiring: each veth's peer, as `ip -o link` shows it (name@peer).
    const ipLinks = sh("ip", ["-o", "link", "show"]);
    for (const [a, b] of RFTEST2_LINKS) expect(ipLinks).toContain(`${a}@${b}:`);
    // A mesh of 4 switches and 5 links: RSTP keeps 3 links in the tree and blocks one end of the other 2.
    expect(["s5", "s6", "s7", "s8"].reduce((n, s) => n + blockedPorts(s), 0)).toBe(2);

    const ping = await mn<PingAll>("rftest2", "pingall");
    expect(ping).toMatchObject({ ok: true, sent: 12, received: 12, failed: [] });

    // s5 (lowest bridge id) is the root; s5-s8 is in the tree. Cut it: s8 must reach s5 through s6 or s7.
    await mn("rftest2", "link", "s5", "s8", "down");
    const tCut = Date.now();
    let after: PingAll = { ok: false, sent: 0, received: 0, failed: [] };
    while (Date.now() - tCut < 20_000) {
      after = await mn<PingAll>("rftest2", "pingall");
      if (after.ok) break;
    }
    expect(after).toMatchObject({ ok: true, received: 12 });
    const failoverSeconds = (Date.now() - tCut) / 1000;
    console.log(
      `rftest2 (no rfboot): up in ${upSeconds.toFixed(1)} s, fail-over ${failoverSeconds.toFixed(2)} s`,
    );

    const pids = [pidOf("rftest2", "mininet"), pidOf("rftest2", "upstream")];
    const down = await rftest("rftest2", ["--down"]);
    expect(down.exitCode, down.all).toBe(0);
    await expectNothingLeft("rftest2", ["s5", "s6", "s7", "s8"], ["h5", "h6", "h7", "h8"], pids);
  });

  it("rftest1 without rfboot: dpid 0x99, ports 1-2, pingall through an exact-match learning switch", async () => {
    const r = await rftest("rftest1", [
      "--rfboot",
      "none",
      "--upstream-mode",
      "learn",
      "--no-wait",
      "--upstream-port",
      String(UPSTREAM),
    ]);
    expect(r.exitCode, r.all).toBe(0);
    const { dpid, ports } = ofPorts("s99");
    expect(dpid).toBe("0000000000000099");
    expect([...ports.entries()]).toEqual([
      [1, "s99-eth1"],
      [2, "s99-eth2"],
    ]);
    expect(await mn<PingAll>("rftest1", "pingall")).toMatchObject({ ok: true, sent: 2, received: 2 });
    // The driver refuses what it does not know, with a usage error (exit 2).
    const bad = await rftest("rftest1", ["--mn", "switch", "s5", "stop"]);
    expect(bad.exitCode).toBe(2);
    const pids = [pidOf("rftest1", "mininet"), pidOf("rftest1", "upstream")];
    const down = await rftest("rftest1", ["--down"]);
    expect(down.exitCode, down.all).toBe(0);
    await expectNothingLeft("rftest1", ["s99"], ["h1", "h2"], pids);
  });

  it("rftest2 through rfboot's relay (watch): four joins with dpids 5..8, pingall, leave and rejoin", async () => {
    const r = await rftest("rftest2", [
      "--rfboot",
      "watch",
      "--no-wait",
      "--listen-port",
      String(LISTEN),
      "--upstream-port",
      String(UPSTREAM),
    ]);
    expect(r.exitCode, r.all).toBe(0);
    const events = () =>
      readFileSync(join(LAB_DIR, "rftest2", "watch.jsonl"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: string; dpid: string; ports?: Array<{ no: number }> });
    const ups = events().filter((e) => e.event === "up");
    expect(ups.map((e) => e.dpid).sort()).toEqual([5, 6, 7, 8].map((d) => d.toString(16).padStart(16, "0")));
    // Data ports as the switch reports them through the relay (LOCAL 0xfffffffe aside).
    const dataPorts = ups.reduce((n, e) => n + (e.ports ?? []).filter((p) => p.no < 0xff00).length, 0);
    expect(dataPorts).toBe(14);
    expect(await mn<PingAll>("rftest2", "pingall")).toMatchObject({ ok: true, received: 12 });

    await mn("rftest2", "switch", "s6", "stop");
    const t = Date.now();
    while (
      Date.now() - t < 15_000 &&
      !events().some((e) => e.event === "down" && e.dpid === "0000000000000006")
    ) {
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(events().some((e) => e.event === "down" && e.dpid === "0000000000000006")).toBe(true);
    await mn("rftest2", "switch", "s6", "start");
    while (Date.now() - t < 30_000 && events().filter((e) => e.event === "up").length < 5) {
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(events().filter((e) => e.event === "up" && e.dpid === "0000000000000006")).toHaveLength(2);
    await mn("rftest2", "wait-converged", "30");
    expect(await mn<PingAll>("rftest2", "pingall")).toMatchObject({ ok: true, received: 12 });

    const pids = [pidOf("rftest2", "mininet"), pidOf("rftest2", "upstream"), pidOf("rftest2", "rfboot")];
    const down = await rftest("rftest2", ["--down"]);
    expect(down.exitCode, down.all).toBe(0);
    await expectNothingLeft("rftest2", ["s5", "s6", "s7", "s8"], ["h5", "h6", "h7", "h8"], pids);
    expect(existsSync(join(LAB_DIR, "rftest2", "rfboot.pid"))).toBe(false);
  });
});
