/**
 * bench/lib/sessions.ts: what the controller benches share: the forked helper children (controller,
 * upstream, reference forwarder) and their IPC, and the scripted OpenFlow 1.3 switch that answers the
 * handshake like Open vSwitch.
 */
import { fork, type ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Framer,
  buildHello,
  decodeMessage,
  encodeMessage,
  type ControllerOptions,
  type OfMessage,
  type Port,
} from "../../src/controller/index.js";
import type { ReadPortStats } from "../../src/controller/readport.js";
import type { ReplyPollStats } from "../../src/controller/replypoll.js";

const HERE = dirname(fileURLToPath(import.meta.url));

// ---- child processes ---------------------------------------------------------------------------

export type ChildMessage = { type: string } & Record<string, unknown>;
/** ChildStats: every child reports memory and CPU (µs since start); the controller child also `ups`. */
export type ChildStats = {
  ups?: number;
  connections?: number;
  rss: number;
  heapUsed: number;
  cpuUs: number;
  cpuSystemUs: number;
  /** The rfboot controller child's read-memory counters (src/controller/readport.ts). */
  readPorts?: ReadPortStats;
  /** The rfboot controller child's reply-poll counters (src/controller/replypoll.ts). */
  replyPoll?: ReplyPollStats;
  /** The rfboot controller child's open-files limits, raised at its start. */
  nofile?: { soft: number; hard: number };
};

/**
 * Child is a forked bench helper speaking the ready/start/stats/close IPC of bench/lib/controller-child.ts,
 * bench/lib/upstream-child.ts and bench/lib/pipe-child.ts. RFBOOT_BENCH_CPU_PROF=DIR writes a --cpu-prof of children started
 * with `profile` (the controller) to DIR.
 */
export class Child {
  private readonly proc: ChildProcess;
  private waiters: ((m: ChildMessage) => void)[] = [];

  constructor(script: string, profile: boolean) {
    const prof = profile ? process.env.RFBOOT_BENCH_CPU_PROF : undefined;
    this.proc = fork(join(HERE, script), [], {
      execArgv: ["--import", "tsx", "--expose-gc", ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [])],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("message", (m: ChildMessage) => {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f(m);
    });
  }

  private next<T>(type: string): Promise<T> {
    return new Promise((resolve) => {
      const f = (m: ChildMessage) => {
        if (m.type === type) resolve(m as T);
        else this.waiters.push(f);
      };
      this.waiters.push(f);
    });
  }

  async ready(): Promise<void> {
    await this.next("ready");
  }

  /** start sends {cmd:"start", ...fields} (each child's own fields) and resolves with its port. */
  async start(fields: Record<string, unknown> = {}): Promise<number> {
    const p = this.next<{ port: number }>("started");
    this.proc.send({ cmd: "start", ...fields });
    return (await p).port;
  }

  async stats(): Promise<ChildStats> {
    const p = this.next<ChildStats>("stats");
    this.proc.send({ cmd: "stats" });
    return p;
  }

  async gc(): Promise<void> {
    const p = this.next("gc");
    this.proc.send({ cmd: "gc" });
    await p;
  }

  async close(): Promise<void> {
    const done = new Promise((r) => this.proc.once("exit", r));
    this.proc.send({ cmd: "close" });
    await done;
  }
}

export async function spawnController(options: ControllerOptions): Promise<{ child: Child; port: number }> {
  const child = new Child("controller-child.ts", true);
  await child.ready();
  const port = await child.start({ options });
  return { child, port };
}

/**
 * spawnReference runs the reference forwarder (bench/lib/pipe-child.ts: `pipe` both ways, no parsing)
 * in its own process, forwarding each connection to 127.0.0.1:`upstreamPort`.
 */
export async function spawnReference(upstreamPort: number): Promise<{ child: Child; port: number }> {
  const child = new Child("pipe-child.ts", false);
  await child.ready();
  const port = await child.start({ upstream: { host: "127.0.0.1", port: upstreamPort } });
  return { child, port };
}

/** spawnUpstream runs the scripted upstream controller in its own process, as rfproxy runs. */
export async function spawnUpstream(): Promise<{ child: Child; port: number }> {
  const child = new Child("upstream-child.ts", false);
  await child.ready();
  const port = await child.start();
  return { child, port };
}

// ---- scripted switch ----------------------------------------------------------------------------

export function port(no: number, dpid: bigint): Port {
  const mac = `02:00:00:00:${(Number(dpid & 0xffn) & 0xff).toString(16).padStart(2, "0")}:${no.toString(16).padStart(2, "0")}`;
  return {
    portNo: no,
    hwAddr: mac,
    name: `s${dpid}-eth${no}`.slice(0, 15),
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
    currSpeed: 0,
    maxSpeed: 0,
  };
}

/** switchAnswers answers the handshake like OVS on OpenFlow 1.3; `onOther` sees everything else. */
export function scriptedSwitch(sock: Socket, dpid: bigint, onOther?: (m: OfMessage) => void): void {
  const framer = new Framer();
  sock.setNoDelay(true);
  sock.write(encodeMessage(buildHello([1, 4], 1)));
  sock.on("data", (chunk: Buffer) => {
    for (const f of framer.push(chunk)) {
      const m = decodeMessage(f);
      switch (m.type) {
        case "features_request":
          sock.write(
            encodeMessage({
              type: "features_reply",
              version: 4,
              xid: m.xid,
              datapathId: dpid,
              nBuffers: 0,
              nTables: 254,
              auxiliaryId: 0,
              capabilities: 0x4f,
              reserved: 0,
            }),
          );
          break;
        case "port_desc_request":
          sock.write(
            encodeMessage({
              type: "port_desc_reply",
              version: 4,
              xid: m.xid,
              flags: 0,
              ports: [1, 2, 3, 4].map((n) => port(n, dpid)),
            }),
          );
          break;
        case "echo_request":
          sock.write(encodeMessage({ type: "echo_reply", version: 4, xid: m.xid, data: m.data }));
          break;
        default:
          onOther?.(m);
      }
    }
  });
}

export function connectTo(p: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: p });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
