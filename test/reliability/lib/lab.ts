/**
 * Building blocks of the scenarios: a config per scenario (test-driver VMs on private libvirtd hosts), an
 * in-process Daemon whose log lines are captured, libvirt and MongoDB observers.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { MongoClient, type Document } from "mongodb";
import pino from "pino";
import type { Logger } from "../../../src/common/log.js";
import {
  Daemon,
  controllerFromConfig,
  parseConfig,
  type RfbootConfig,
} from "../../../src/provisioner/index.js";
import { sh } from "./util.js";

/** tag makes names unique per run (bridges, domains, databases). */
export const tag = (): string => randomBytes(3).toString("hex");

/** VmSpecLine is one datapath of a scenario config. */
export interface DatapathLine {
  dpid: bigint;
  name: string;
  ports: number;
}

/** datapathLines builds n datapaths: dpid base+i, VM `${prefix}${i}`, 2 data ports. */
export function datapathLines(n: number, base: bigint, prefix: string, ports = 2): DatapathLine[] {
  return Array.from({ length: n }, (_, i) => ({
    dpid: base + BigInt(i + 1),
    name: `${prefix}${String(i + 1).padStart(2, "0")}`,
    ports,
  }));
}

/** vmIdOf derives a unique locally administered vm_id (MAC) from a dpid. */
export function vmIdOf(dpid: bigint): string {
  const h = (dpid & 0xffffffffffn).toString(16).padStart(10, "0");
  return `02:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`;
}

/** ConfigOptions describe one scenario's config. */
export interface ConfigOptions {
  stateDir: string;
  port: number;
  mongoUri: string;
  database: string;
  hosts: { name: string; uri: string; maxVms?: number; maxConcurrentStarts?: number }[];
  datapaths: DatapathLine[];
  /** base image: VMs get a qcow2 overlay on it. */
  baseImage?: string;
  mode?: "listen" | "relay";
  upstreamPort?: number;
  /** policies YAML (flow style), e.g. `{ leave: { action: destroy, graceSeconds: 5 } }`. */
  policies?: string;
}

/** configYaml renders a scenario config. */
export function configYaml(o: ConfigOptions): string {
  const disk = o.baseImage ? `, boot: { type: disk }, disk: { image: "${o.baseImage}" }` : "";
  return `
stateDir: ${o.stateDir}
openflow:
  mode: ${o.mode ?? "listen"}
  listen: { host: 127.0.0.1, port: ${o.port} }
  upstream: { host: 127.0.0.1, port: ${o.upstreamPort ?? 6633} }
  versions: ["1.0", "1.3"]
mongo: { uri: "${o.mongoUri}", database: ${o.database} }
hosts:
${o.hosts
  .map(
    (h) =>
      `  - { name: ${h.name}, uri: "${h.uri}", maxVms: ${h.maxVms ?? 64}, maxConcurrentStarts: ${h.maxConcurrentStarts ?? 4} }`,
  )
  .join("\n")}
defaults: { hypervisor: test, memoryMiB: 16${disk} }
datapaths:
${o.datapaths
  .map(
    (d) =>
      `  "0x${d.dpid.toString(16)}": { name: ${d.name}, vmId: "${vmIdOf(d.dpid)}", dataPorts: ${d.ports} }`,
  )
  .join("\n")}
policies: ${o.policies ?? "{}"}
readiness: { consoleMarker: null }
`;
}

/** parse turns scenario YAML into a config. */
export function parse(yaml: string): RfbootConfig {
  return parseConfig(yaml, { format: "yaml", source: "reliability" });
}

/** CapturedLog is a pino logger whose JSON lines are kept in memory. */
export class CapturedLog {
  readonly lines: (Record<string, unknown> & { msg?: string })[] = [];
  readonly logger: Logger;

  constructor(level = "info") {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const l of chunk.toString().split("\n")) {
          if (!l.trim()) continue;
          try {
            this.lines.push(JSON.parse(l) as Record<string, unknown>);
          } catch {
            this.lines.push({ msg: l });
          }
        }
        cb();
      },
    });
    this.logger = pino({ level }, sink);
  }

  find(msg: string): (Record<string, unknown> & { msg?: string })[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}

/** DaemonTimings: short retry/lease timings for tests (the defaults are production values). */
export interface DaemonTimings {
  retryInitialMs?: number;
  retryMaxMs?: number;
  leaseTtlMs?: number;
}

/** startDaemon starts an in-process Daemon with the config's controller and a captured log. */
export async function startDaemon(
  config: RfbootConfig,
  log: CapturedLog,
  t: DaemonTimings = {},
): Promise<Daemon> {
  const d = new Daemon({
    config,
    logger: log.logger,
    createController: controllerFromConfig,
    instanceId: `rel-${tag()}`,
    retryInitialMs: t.retryInitialMs ?? 200,
    retryMaxMs: t.retryMaxMs ?? 2000,
    leaseTtlMs: t.leaseTtlMs ?? 5000,
  });
  await d.start();
  return d;
}

/** domains lists a libvirt host's domains whose name starts with `prefix`: name -> state word. */
export async function domains(uri: string, prefix: string): Promise<Map<string, string>> {
  const out = await sh("virsh", ["-c", uri, "list", "--all"]);
  const m = new Map<string, string>();
  for (const line of out.split("\n").slice(2)) {
    const x = /^\s*(\S+)\s+(\S+)\s+(.+?)\s*$/.exec(line);
    if (x && x[2]!.startsWith(prefix)) m.set(x[2]!, x[3]!);
  }
  return m;
}

/** runningCount counts running domains with the prefix. */
export async function runningCount(uri: string, prefix: string): Promise<number> {
  return [...(await domains(uri, prefix)).values()].filter((s) => s === "running").length;
}

/** Db observes one database of a MongoDB-wire server (rfconfig, records, events). */
export class Db {
  private constructor(
    readonly client: MongoClient,
    readonly name: string,
  ) {}

  static async open(uri: string, name: string): Promise<Db> {
    return new Db(await MongoClient.connect(uri, { serverSelectionTimeoutMS: 3000 }), name);
  }

  records(): Promise<Document[]> {
    return this.client.db(this.name).collection("rfboot_vms").find().toArray();
  }

  rows(): Promise<Document[]> {
    return this.client
      .db(this.name)
      .collection("rfconfig")
      .find({}, { projection: { _id: 0 } })
      .toArray();
  }

  events(): Promise<Document[]> {
    return this.client.db(this.name).collection("rfboot_events").find().toArray();
  }

  async drop(): Promise<void> {
    await this.client
      .db(this.name)
      .dropDatabase()
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

/** expectedRows lists RouteFlow's rfconfig rows for the datapaths (decimal strings, k <-> k). */
export function expectedRows(dps: DatapathLine[]): string[] {
  return dps
    .flatMap((d) =>
      Array.from({ length: d.ports }, (_, k) =>
        JSON.stringify({
          vm_id: BigInt(`0x${vmIdOf(d.dpid).replace(/:/g, "")}`).toString(10),
          vm_port: String(k + 1),
          ct_id: "0",
          dp_id: d.dpid.toString(10),
          dp_port: String(k + 1),
        }),
      ),
    )
    .sort();
}

/** rowKeys canonicalises rfconfig rows read back for comparison with expectedRows. */
export function rowKeys(rows: Document[]): string[] {
  return rows
    .map((r) =>
      JSON.stringify({
        vm_id: r.vm_id,
        vm_port: r.vm_port,
        ct_id: r.ct_id,
        dp_id: r.dp_id,
        dp_port: r.dp_port,
      }),
    )
    .sort();
}
