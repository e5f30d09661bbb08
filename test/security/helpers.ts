/** Helpers for the hostile-input tests: peers from a chosen loopback address, heap measurement, log capture. */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino, type Logger } from "pino";
import { Peer } from "../unit/controller/fake-peers.js";

export { Peer, type FakeSwitchSpec } from "../unit/controller/fake-peers.js";

/** connectFrom opens a Peer to 127.0.0.1:port from `localAddress` (any 127/8 address is loopback on Linux). */
export function connectFrom(port: number, localAddress = "127.0.0.1"): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, localAddress });
    s.once("connect", () => resolve(new Peer(s)));
    s.once("error", reject);
  });
}

/** rawConnect opens a bare socket (no framing, no decoding) and resolves once connected (or rejects). */
export function rawConnect(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, ...(localAddress ? { localAddress } : {}) });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** closedWithin resolves true when the socket closes within `ms`. */
export function closedWithin(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed && s.readyState === "closed") return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

let gcFn: (() => void) | undefined;

/** gc runs a full garbage collection (exposes it on first use). */
export function gc(): void {
  if (!gcFn) {
    setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  gcFn();
  gcFn();
}

/** heapMiB is the used heap after a full GC, in MiB. */
export function heapMiB(): number {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** rssMiB is the resident set size, in MiB. */
export function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/** openFileLimit reads this process's RLIMIT_NOFILE soft limit. */
export function openFileLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"));
  return m ? Number(m[1]) : 1024;
}

/** CapturedLog is a pino logger writing JSON lines into `lines` (parsed). */
export interface CapturedLog {
  logger: Logger;
  lines: Record<string, unknown>[];
  text: () => string;
}

/** captureLog builds a logger (debug level) whose output is kept in memory. */
export function captureLog(options: Parameters<typeof pino>[0] = {}): CapturedLog {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) {
        if (l.trim() === "") continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = pino({ level: "debug", ...(options as object) }, stream);
  return { logger, lines, text: () => raw.join("\n") };
}

/** sleep waits `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** until polls `pred` every 20 ms for up to `ms`; throws with `what` when it never holds. */
export async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
