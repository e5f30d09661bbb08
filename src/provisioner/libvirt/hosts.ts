/**
 * The libvirt host registry: one DomainManager per configured host, reachability probes (`list --all` with
 * state and figures, the host's CPUs and memory), and the capacity/placement inputs derived from the last
 * probe.
 */
import { errorMessage, VirshError } from "../../common/errors.js";
import { silentLogger, type Logger } from "../../common/log.js";
import { DomainManager, isActive, type DomainInfo } from "./lifecycle.js";
import type { HostCapacity, KnownPlacement } from "../placement.js";
import { parseNodeinfo, parseNodememstats } from "./parse.js";
import { HostStorage } from "./storage.js";
import { createSpawnRunner, type VirshRunner } from "./virsh.js";

/** HostSpec is a configured libvirt host (structurally a subset of the config's HostConfig). */
export interface HostSpec {
  name: string;
  uri: string;
  maxVms: number;
  /** memoryMiB for VMs; undefined: memory is not a placement limit. */
  memoryMiB?: number;
  maxConcurrentStarts: number;
  /** The storage fields (all or none): without them the host has no pool and cannot prepare VM disks. */
  storageDir?: string;
  consoleLogDir?: string;
  pool?: string;
  images?: "path" | "pool";
  upload?: boolean;
  /** memoryReserveMiB the host keeps for itself out of the memory it reports (default 0). */
  memoryReserveMiB?: number;
}

/** HostNode is what `virsh nodeinfo` says of a host. */
export interface HostNode {
  cpus: number;
  memoryMiB: number;
}

/** HostMemory is the host's own memory report (`virsh nodememstats`), MiB. */
export interface HostMemory {
  totalMiB: number;
  /** availableMiB: free + buffers + cached (the kernel gives page cache back when VMs need it). */
  availableMiB: number;
}

/** HostProbe is the result of probing one host. */
export interface HostProbe {
  name: string;
  uri: string;
  reachable: boolean;
  /** latencyMs of the probe round trip. */
  latencyMs: number;
  /** error text when unreachable (or the listing failed). */
  error?: string;
  domains: DomainInfo[];
  /** running is the number of active domains (running, paused, ...). */
  running: number;
  /** memoryInUseMiB sums the current memory of active domains that report it. */
  memoryInUseMiB: number;
  /** node: the host's CPUs and memory size; undefined when nodeinfo did not answer. */
  node?: HostNode;
  /** memory: the host's memory report; undefined where the driver has none (the test driver). */
  memory?: HostMemory;
  probedAt: Date;
}

/** HostRegistryOptions configure the registry. */
export interface HostRegistryOptions {
  hosts: readonly HostSpec[];
  run?: VirshRunner;
  log?: Logger;
  /** probeTimeoutMs bounds each probe call (default 5 s): an unreachable host must not stall the daemon. */
  probeTimeoutMs?: number;
  /** timeoutMs for lifecycle calls (default 30 s). */
  timeoutMs?: number;
  /** shutdownTimeoutMs for the shutdown leave policy. */
  shutdownTimeoutMs?: number;
  /** date stamps probes (`probedAt`; default new Date): injected so tests control time. */
  date?: () => Date;
}

/** sameLibvirtSide: two specs of a host reach the same libvirt with the same storage (managers can stay). */
function sameLibvirtSide(a: HostSpec, b: HostSpec): boolean {
  return (["uri", "storageDir", "consoleLogDir", "pool", "images", "upload"] as const).every(
    (k) => a[k] === b[k],
  );
}

/** storageOf builds a host's storage from its spec, or undefined when the spec has no storage fields. */
function storageOf(h: HostSpec, run: VirshRunner, log?: Logger): HostStorage | undefined {
  if (h.storageDir === undefined || h.consoleLogDir === undefined) return undefined;
  return new HostStorage({
    host: { name: h.name, uri: h.uri },
    spec: {
      pool: h.pool ?? "rfboot",
      storageDir: h.storageDir,
      consoleLogDir: h.consoleLogDir,
      images: h.images ?? "path",
      upload: h.upload ?? false,
    },
    run,
    ...(log ? { log } : {}),
  });
}

/** summarize turns a domain list into the probe counters. */
export function summarize(domains: readonly DomainInfo[]): { running: number; memoryInUseMiB: number } {
  let running = 0;
  let kib = 0;
  for (const d of domains) {
    if (!isActive(d.state)) continue;
    running++;
    kib += d.memoryKiB ?? 0;
  }
  return { running, memoryInUseMiB: Math.round(kib / 1024) };
}

/** HostRegistry owns the per-host managers and the latest probe of each host. */
export class HostRegistry {
  private readonly managers = new Map<string, DomainManager>();
  private readonly storages = new Map<string, HostStorage>();
  private readonly probes = new Map<string, HostProbe>();
  /** nodes: each host's nodeinfo, asked once per host (CPUs and memory size do not change under libvirtd). */
  private readonly nodes = new Map<string, HostNode>();
  /** noMemoryStats: hosts whose driver has no nodememstats (test), not asked again. */
  private readonly noMemoryStats = new Set<string>();
  private readonly run: VirshRunner;
  private readonly probeRunner: VirshRunner;
  private readonly date: () => Date;
  private list: readonly HostSpec[] = [];

  constructor(private readonly opts: HostRegistryOptions) {
    this.run = opts.run ?? createSpawnRunner();
    this.date = opts.date ?? (() => new Date());
    const probeTimeout = opts.probeTimeoutMs ?? 5_000;
    this.probeRunner = (uri, args, o) =>
      this.run(uri, args, { ...o, timeoutMs: Math.min(o?.timeoutMs ?? probeTimeout, probeTimeout) });
    this.setHosts(opts.hosts);
  }

  /** hosts are the configured hosts, in config order. */
  get hosts(): readonly HostSpec[] {
    return this.list;
  }

  /**
   * setHosts replaces the host list (a reloaded config): a new host gets a manager and counts in probes and
   * capacities at once; a removed one loses its manager and its last probe, so placement no longer offers
   * it. A host whose URI or storage changed gets a new manager. Returns the names added and removed.
   */
  setHosts(hosts: readonly HostSpec[]): { added: string[]; removed: string[] } {
    const before = new Map(this.list.map((h) => [h.name, h]));
    const after = new Set(hosts.map((h) => h.name));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [name, h] of before) {
      const next = hosts.find((x) => x.name === name);
      if (next && sameLibvirtSide(next, h)) continue;
      const m = this.managers.get(name);
      const st = this.storages.get(name);
      this.managers.delete(name);
      this.storages.delete(name);
      this.probes.delete(name);
      this.nodes.delete(name);
      this.noMemoryStats.delete(name);
      // Their private temp dirs only; a failure leaves an empty directory behind, nothing else.
      void m?.dispose().catch(() => undefined);
      void st?.dispose().catch(() => undefined);
      if (!after.has(name)) removed.push(name);
    }
    for (const h of hosts) {
      if (this.managers.has(h.name)) continue;
      if (!before.has(h.name)) added.push(h.name);
      const storage = storageOf(h, this.run, this.opts.log);
      if (storage) this.storages.set(h.name, storage);
      this.managers.set(
        h.name,
        new DomainManager({
          host: { name: h.name, uri: h.uri },
          run: this.run,
          ...(storage ? { storage } : {}),
          log: this.opts.log ?? silentLogger,
          timeoutMs: this.opts.timeoutMs,
          shutdownTimeoutMs: this.opts.shutdownTimeoutMs,
        }),
      );
    }
    this.list = [...hosts];
    return { added, removed };
  }

  /** manager returns the DomainManager of a host (throws for an unknown name: a programming error). */
  manager(host: string): DomainManager {
    const m = this.managers.get(host);
    if (!m) throw new Error(`unknown libvirt host ${host}`);
    return m;
  }

  /** storage returns the storage of a host (throws for an unknown host or one configured without storage). */
  storage(host: string): HostStorage {
    const s = this.storages.get(host);
    if (!s) throw new Error(`libvirt host ${host} is unknown or has no storage configured`);
    return s;
  }

  /** spec returns a host's configuration. */
  spec(host: string): HostSpec | undefined {
    return this.hosts.find((h) => h.name === host);
  }

  /**
   * probe lists one host (with CPU/memory figures), asks what memory it has (`nodememstats`; `nodeinfo` the
   * first time) alongside, and records whether it answered. Every call is bounded by the probe timeout.
   */
  async probe(host: string): Promise<HostProbe> {
    const spec = this.spec(host);
    if (!spec) throw new Error(`unknown libvirt host ${host}`);
    const m = new DomainManager({ host: { name: spec.name, uri: spec.uri }, run: this.probeRunner });
    const t0 = performance.now();
    let p: HostProbe;
    try {
      const [domains, node, memory] = await Promise.all([
        m.list({ stats: true }),
        this.nodeOf(spec),
        this.memoryOf(spec),
      ]);
      p = {
        name: spec.name,
        uri: spec.uri,
        reachable: true,
        latencyMs: performance.now() - t0,
        domains,
        ...summarize(domains),
        ...(node ? { node } : {}),
        ...(memory ? { memory } : {}),
        probedAt: this.date(),
      };
    } catch (e) {
      p = {
        name: spec.name,
        uri: spec.uri,
        reachable: false,
        latencyMs: performance.now() - t0,
        error: errorMessage(e),
        domains: [],
        running: 0,
        memoryInUseMiB: 0,
        probedAt: this.date(),
      };
    }
    // A host removed (setHosts) while its probe ran is not recorded again.
    if (this.managers.has(host)) this.probes.set(host, p);
    return p;
  }

  /** nodeOf returns the host's nodeinfo, asking once; a failure leaves it unknown until the next probe. */
  private async nodeOf(spec: HostSpec): Promise<HostNode | undefined> {
    const known = this.nodes.get(spec.name);
    if (known) return known;
    try {
      const n = parseNodeinfo((await this.probeRunner(spec.uri, ["nodeinfo"])).stdout);
      if (!n) return undefined;
      const node = { cpus: n.cpus, memoryMiB: Math.floor(n.memoryKiB / 1024) };
      // Only for a host still configured with this URI (setHosts may have run meanwhile).
      if (this.spec(spec.name)?.uri === spec.uri) this.nodes.set(spec.name, node);
      return node;
    } catch {
      // Unreachable: the listing beside it says so.
      return undefined;
    }
  }

  /**
   * memoryOf returns the host's memory report. A driver without nodememstats is not asked again (placement
   * then uses the configured limits alone); a failed call leaves the figure unknown for this probe.
   */
  private async memoryOf(spec: HostSpec): Promise<HostMemory | undefined> {
    if (this.noMemoryStats.has(spec.name)) return undefined;
    try {
      const s = parseNodememstats((await this.probeRunner(spec.uri, ["nodememstats"])).stdout);
      if (!s) return undefined;
      return {
        totalMiB: Math.floor(s.totalKiB / 1024),
        availableMiB: Math.floor((s.freeKiB + s.buffersKiB + s.cachedKiB) / 1024),
      };
    } catch (e) {
      if (memoryStatsUnsupported(e) && this.spec(spec.name)?.uri === spec.uri)
        this.noMemoryStats.add(spec.name);
      return undefined;
    }
  }

  /** probeAll probes every host in parallel. */
  probeAll(): Promise<HostProbe[]> {
    return Promise.all(this.hosts.map((h) => this.probe(h.name)));
  }

  /** lastProbe returns the latest probe of a host, if any. */
  lastProbe(host: string): HostProbe | undefined {
    return this.probes.get(host);
  }

  /**
   * capacities are placement's host inputs; a host never probed counts as reachable until a probe says
   * otherwise. A host that reported its memory at its last probe carries that report, with what each running
   * domain held then (its resident memory where libvirt reports it, else its current memory).
   */
  capacities(): HostCapacity[] {
    return this.hosts.map((h) => {
      const p = this.probes.get(h.name);
      const c: HostCapacity = {
        name: h.name,
        maxVms: h.maxVms,
        memoryMiB: h.memoryMiB ?? Number.POSITIVE_INFINITY,
        reachable: p?.reachable ?? true,
      };
      if (!p?.memory) return c;
      const held = new Map<string, number>();
      for (const d of p.domains) {
        const kib = d.rssKiB ?? d.memoryKiB;
        if (isActive(d.state) && kib !== undefined) held.set(d.name, kib / 1024);
      }
      return {
        ...c,
        reported: {
          availableMiB: p.memory.availableMiB,
          ...(p.node ? { totalMiB: p.node.memoryMiB } : {}),
          reserveMiB: h.memoryReserveMiB ?? 0,
          heldMiB: held,
        },
      };
    });
  }

  /**
   * placements lists the domains seen by the last probes as placement inputs; `isOurs` filters to rfboot's VMs
   * (other domains on a shared host are not ours to count), `memoryOf` gives a VM's configured memory.
   */
  placements(
    isOurs: (name: string) => boolean,
    memoryOf: (name: string, seenKiB?: number) => number,
  ): KnownPlacement[] {
    const out: KnownPlacement[] = [];
    for (const p of this.probes.values()) {
      for (const d of p.domains) {
        if (!isOurs(d.name)) continue;
        out.push({
          vm: d.name,
          host: p.name,
          memoryMiB: memoryOf(d.name, d.memoryKiB),
          running: isActive(d.state),
        });
      }
    }
    return out;
  }

  /** locate finds the reachable hosts where a domain is defined, according to the last probes. */
  locate(name: string): string[] {
    const out: string[] = [];
    for (const p of this.probes.values()) if (p.domains.some((d) => d.name === name)) out.push(p.name);
    return out;
  }

  /** dispose releases the managers' and storages' temp dirs. */
  async dispose(): Promise<void> {
    await Promise.all([
      ...[...this.managers.values()].map((m) => m.dispose()),
      ...[...this.storages.values()].map((s) => s.dispose()),
    ]);
  }
}

/** memoryStatsUnsupported: the driver has no virNodeGetMemoryStats (libvirt's test driver). */
function memoryStatsUnsupported(e: unknown): boolean {
  return e instanceof VirshError && /virNodeGetMemoryStats/.test(e.stderr || e.message);
}
