/**
 * Small helpers for tests with real peers: commands (execa, argument arrays, LC_ALL=C), a free loopback
 * port, whether a port is open, process and Mininet shell checks, an Open vSwitch bridge that acts as a
 * switch, and polling with a deadline.
 */
import { readdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { execa } from "execa";

/** sleep resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** sh runs a command and returns its stdout; a non-zero exit throws. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  return (await execa(cmd, args, { env: { LC_ALL: "C" } })).stdout;
}

/** shOk runs a command whose failure does not matter (clean-up). */
export async function shOk(cmd: string, args: string[]): Promise<void> {
  await execa(cmd, args, { env: { LC_ALL: "C" }, reject: false });
}

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** portOpen says whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** alive says whether process `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2];
    return st !== "Z" && st !== "X";
  } catch {
    return false;
  }
}

/** mininetShells lists processes whose last argument is `mininet:<host>` (Mininet's host shells). */
export function mininetShells(hosts: readonly string[]): number[] {
  const want = new Set(hosts.map((h) => `mininet:${h}`));
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").filter(Boolean);
      if (want.has(argv[argv.length - 1] ?? "")) pids.push(Number(d));
    } catch {
      // process gone
    }
  }
  return pids;
}

/**
 * addSwitch makes (or re-points) a userspace OVS bridge with datapath id `dpid` (hex) whose controllers are
 * 127.0.0.1 at `ports`; reconnect backoff is capped at 1 s so tests do not wait on OVS's 8 s default.
 */
export async function addSwitch(
  name: string,
  dpid: string,
  ports: number | readonly number[],
  protocols = "OpenFlow13",
): Promise<void> {
  await sh("ovs-vsctl", [
    "--may-exist",
    "add-br",
    name,
    "--",
    "set",
    "bridge",
    name,
    "datapath_type=netdev",
    `protocols=${protocols}`,
    `other-config:datapath-id=${dpid.padStart(16, "0")}`,
    "fail_mode=secure",
  ]);
  const targets = (typeof ports === "number" ? [ports] : ports).map((p) => `tcp:127.0.0.1:${p}`);
  await sh("ovs-vsctl", ["set-controller", name, ...targets]);
  const uuids = (await sh("ovs-vsctl", ["get", "bridge", name, "controller"])).replace(/[[\]\s]/g, "");
  for (const u of uuids.split(",").filter(Boolean)) {
    await shOk("ovs-vsctl", ["set", "controller", u, "max_backoff=1000"]);
  }
}

/** until polls `fn` every `everyMs` until it returns something other than undefined/false, or times out. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}
