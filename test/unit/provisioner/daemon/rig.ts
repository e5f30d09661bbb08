/** A Daemon wired to the fakes: scripted switches, libvirt and store, fake time, in-memory console. */
import type { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { silentLogger, type Logger } from "../../../../src/common/log.js";
import { Daemon, type DaemonEvents } from "../../../../src/provisioner/daemon.js";
import { parseConfig, type RfbootConfig } from "../../../../src/provisioner/index.js";
import type { DomainConsoleWatch } from "../../../../src/provisioner/vm-readiness.js";
import type { OvsSeam } from "../../../../src/provisioner/ovs.js";
import { FakeClock, FakeLibvirt, FakeSwitches, MemoryConsole, RecordingStore, settle } from "./fakes.js";

/** URI of scripted host hN. */
export const uri = (n: number): string => `test:///h${n}`;

/** Rig is one daemon under test with its fakes and the events it emitted. */
export interface Rig {
  daemon: Daemon;
  clock: FakeClock;
  store: RecordingStore;
  libvirt: FakeLibvirt;
  switches: FakeSwitches;
  console: MemoryConsole;
  stateDir: string;
  seen: { [K in keyof DaemonEvents]: DaemonEvents[K][0][] };
  stop(): Promise<void>;
}

/**
 * configYaml builds a config: hosts h1..hN (test driver, or the URIs `uris`), datapaths 0x1..0xK (rfvm1..K,
 * two data ports), VM `defaults` (test hypervisor, 64 MiB), then `extra` YAML sections (policies,
 * readiness, ...). The leave policy defaults to destroy after 10 s.
 */
export function configYaml(
  stateDir: string,
  o: {
    hosts?: number;
    vms?: number;
    extra?: string;
    openflow?: string;
    uris?: readonly string[];
    defaults?: string;
    hostExtra?: Record<number, string>;
    /** vmExtra: more keys of datapath 0xN's entry (`host: h2`). */
    vmExtra?: Record<number, string>;
  } = {},
): string {
  const hosts = Array.from(
    { length: o.uris?.length ?? o.hosts ?? 1 },
    (_, i) =>
      `  - { name: h${i + 1}, uri: "${o.uris?.[i] ?? uri(i + 1)}", maxVms: 4${o.hostExtra?.[i + 1] ? `, ${o.hostExtra[i + 1]}` : ""} }`,
  );
  const vms = Array.from(
    { length: o.vms ?? 2 },
    (_, i) =>
      `  "0x${i + 1}": { name: rfvm${i + 1}, vmId: "02:a${i + 1}:00:00:00:01", dataPorts: 2${o.vmExtra?.[i + 1] ? `, ${o.vmExtra[i + 1]}` : ""} }`,
  );
  return `
stateDir: ${stateDir}
${o.openflow ?? "openflow: { mode: listen, listen: { host: 127.0.0.1, port: 6653 } }"}
mongo: { uri: "mongodb://127.0.0.1:1/x" }
hosts:
${hosts.join("\n")}
defaults: ${o.defaults ?? "{ hypervisor: test, memoryMiB: 64 }"}
datapaths:
${vms.join("\n")}
${o.extra ?? "policies: { leave: { action: destroy, graceSeconds: 10 } }\nreadiness: { consoleMarker: null }"}
`;
}

/** ConfigYamlOptions are configYaml's knobs (see there). */
type ConfigYamlOptions = NonNullable<Parameters<typeof configYaml>[1]>;

/**
 * unitConfig parses configYaml's config. Domains and leases ahead (policies.defineAhead, leaseAhead) are off
 * unless asked for: these tests follow a join's path from a host that has no domain yet and a lease nobody
 * claimed; domains-ahead.test.ts and leases-ahead.test.ts cover them.
 */
export function unitConfig(
  stateDir: string,
  o: ConfigYamlOptions & { defineAhead?: boolean; leaseAhead?: boolean } = {},
  source = "unit",
): RfbootConfig {
  const doc = parseYaml(configYaml(stateDir, o)) as { policies?: Record<string, unknown> };
  doc.policies = {
    defineAhead: o.defineAhead ?? false,
    leaseAhead: o.leaseAhead ?? false,
    ...doc.policies,
  };
  return parseConfig(stringifyYaml(doc), { format: "yaml", source });
}

/** rig builds and starts a daemon over the fakes. */
export async function rig(
  o: {
    hosts?: number;
    vms?: number;
    extra?: string;
    /** openflow replaces the config's `openflow:` line (listen mode on 6653 by default). */
    openflow?: string;
    uris?: readonly string[];
    defaults?: string;
    /** domainConsole: the console stream watch readiness uses (default: none may be started). */
    domainConsole?: DomainConsoleWatch;
    /** hostExtra: more keys of host hN's entry (`dataPlane: {...}`). */
    hostExtra?: Record<number, string>;
    vmExtra?: Record<number, string>;
    /** ovs: the Open vSwitch of the data plane (default: none expected; the real one is never called). */
    ovs?: OvsSeam;
    retryInitialMs?: number;
    retryMaxMs?: number;
    /** logger: where the daemon logs (default: nowhere). */
    logger?: Logger;
    before?: (r: Rig) => void;
    /** clock, store, libvirt: those of an earlier rig (a restarted daemon finds what it left). */
    clock?: FakeClock;
    store?: RecordingStore;
    libvirt?: FakeLibvirt;
    stateDir?: string;
    /** defineAhead: policies.defineAhead (default off here, see unitConfig). */
    defineAhead?: boolean;
    /** leaseAhead: policies.leaseAhead (default off here, see unitConfig). */
    leaseAhead?: boolean;
    /** instanceId: the daemon's (default `unit-1`). */
    instanceId?: string;
  } = {},
): Promise<Rig> {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), "rfboot-daemon-unit-"));
  const clock = o.clock ?? new FakeClock();
  const store = o.store ?? new RecordingStore(clock);
  const libvirt = o.libvirt ?? new FakeLibvirt();
  const switches = new FakeSwitches();
  const console = new MemoryConsole();
  const config = unitConfig(stateDir, o);
  const daemon = new Daemon({
    config,
    logger: o.logger ?? silentLogger,
    instanceId: o.instanceId ?? "unit-1",
    controller: switches,
    store,
    runner: libvirt.run,
    ...(o.ovs ? { ovs: o.ovs } : {}),
    clock,
    console,
    ...(o.domainConsole ? { domainConsole: o.domainConsole } : {}),
    leaseTtlMs: 30_000,
    retryInitialMs: o.retryInitialMs ?? 1000,
    retryMaxMs: o.retryMaxMs ?? 8000,
    watchLibvirtEvents: false,
  });
  const seen = {
    joined: [],
    ignored: [],
    ensured: [],
    ready: [],
    failed: [],
    left: [],
    reconciled: [],
    hostLost: [],
    hostBack: [],
    replaced: [],
    port: [],
    prewarmed: [],
  } as Rig["seen"];
  for (const k of Object.keys(seen) as (keyof DaemonEvents)[]) {
    (daemon as EventEmitter).on(k, (e: unknown) => (seen[k] as unknown[]).push(e));
  }
  const r: Rig = {
    daemon,
    clock,
    store,
    libvirt,
    switches,
    console,
    stateDir,
    seen,
    async stop() {
      await daemon.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  o.before?.(r);
  await daemon.start();
  await settle();
  return r;
}

/** hex16 is a dpid as the daemon's events name it. */
export const hex16 = (dpid: bigint): string => dpid.toString(16).padStart(16, "0");

/** joined makes a switch join and waits until its ensure has run. */
export async function joinAndSettle(r: Rig, dpid: bigint, ports?: readonly number[]): Promise<void> {
  r.switches.join(dpid, ports);
  await settle();
  await r.daemon.idle();
  await settle();
}

/** isStorage: a storage pool or volume call (the host's pools are ensured and swept at start). */
export const isStorage = (args: readonly string[]) => /^(pool|vol)-/.test(args[0] ?? "");

/**
 * virshCmds lists the commands about domains sent to host hN (`host`, default 1) from call `from` on:
 * listings, host probes and storage left out; a `define` reads `define` (`defineName`: `define rfvmN`).
 */
export function virshCmds(x: Rig, o: { host?: number; from?: number; defineName?: boolean } = {}): string[] {
  return x.libvirt.calls
    .slice(o.from ?? 0)
    .filter(
      (c) =>
        c.uri === uri(o.host ?? 1) &&
        !["list", "domstats", "nodeinfo", "nodememstats", "uri"].includes(c.args[0] ?? "") &&
        !isStorage(c.args),
    )
    .map((c) =>
      c.args[0] !== "define"
        ? c.args.join(" ")
        : o.defineName
          ? `define ${c.args[1]?.match(/(rfvm\d+)-/)?.[1]}`
          : "define",
    );
}
