/**
 * Domain lifecycle on one libvirt host, through the virsh seam: define (upsert by stable uuid),
 * start/adopt/resume with rollback of what this attempt created, leave policies, removal, listing. The disk
 * is a volume of the host's pool (storage.ts), virsh's output is read by parse.ts.
 */
import { RfbootError, VirshError } from "../../common/errors.js";
import { silentLogger, type Logger } from "../../common/log.js";
import { XmlFiles } from "./xml-files.js";
import type { DiskPlan, HostStorage } from "./storage.js";
import {
  DOMAIN_STATE_CODES,
  parseDominfo,
  parseDomstate,
  parseDomstats,
  parseNameList,
  parseUuidNameList,
  type DomainState,
} from "./parse.js";
import {
  isAlreadyRunning,
  isDomainMissing,
  isNotRunning,
  type VirshRunner,
  type VirshRunOptions,
} from "./virsh.js";

/** isActive: states in which the domain has a live process (libvirt's "active"). */
export function isActive(s: DomainState): boolean {
  return s === "running" || s === "blocked" || s === "paused" || s === "shutdown" || s === "pmsuspended";
}

/** HostRef names the libvirt host a manager acts on. */
export interface HostRef {
  name: string;
  uri: string;
}

/**
 * KnownDomainState is a domain's state and reason as `domstate --reason` says it; `saved`, when known, says
 * whether it holds a managed-save image (otherwise asked with `dominfo` where it matters).
 */
export interface KnownDomainState {
  state: DomainState;
  reason: string;
  saved?: boolean;
}

/** EnsureSpec is what `ensureRunning` needs: name, stable uuid, domain XML, disk plan. */
export interface EnsureSpec {
  name: string;
  /** uuid is the stable uuid inside `xml` (for logs; define's upsert relies on the XML's own uuid). */
  uuid?: string;
  xml: string;
  disk?: DiskPlan;
  /** redefine (default true) upserts the XML even for an existing domain, so config changes apply at next start. */
  redefine?: boolean;
  /**
   * state, when given, is the domain's state as the caller just read it (`state(name)`, undefined: no such
   * domain), used instead of reading it again: the caller read it beside other work of its own.
   */
  state?: Promise<KnownDomainState | undefined>;
  /**
   * onStarting is called once, before the disk is prepared, when this attempt will define and start, start or
   * resume the domain; never when it finds the domain already running (an adopted VM never "starts").
   */
  onStarting?: () => void;
  /** onDefined is called right after `virsh define` succeeded, with the wall-clock moment it completed. */
  onDefined?: (at: Date) => void;
  /**
   * beforeRun, when given, is awaited while the domain exists but its CPUs do not run yet: a start becomes
   * `start NAME --paused` (a boot, or the restore of a managed save), then beforeRun, then `resume NAME`; a
   * paused domain is resumed after it too. `boot` is false for a restore or resume. Its failure is logged,
   * never the attempt's: the domain is resumed either way.
   */
  beforeRun?: (boot: boolean) => Promise<void>;
}

/** EnsureAction tells what ensureRunning had to do. */
export type EnsureAction = "adopted" | "started" | "resumed" | "defined+started";

/** EnsureTimings are milliseconds spent per step (absent when the step did not run). */
export interface EnsureTimings {
  totalMs: number;
  stateMs?: number;
  diskMs?: number;
  defineMs?: number;
  startMs?: number;
}

/** EnsureResult reports the outcome of ensureRunning. */
export interface EnsureResult {
  action: EnsureAction;
  host: string;
  /** restored is true when start brought back a managed-save image instead of booting. */
  restored: boolean;
  /** createdDisk is true when this attempt created the overlay/copy. */
  createdDisk: boolean;
  timings: EnsureTimings;
  /** definedAt is the wall-clock moment this attempt's `virsh define` completed (absent: no define). */
  definedAt?: Date;
  /** startedAt is the wall-clock moment this attempt's `virsh start`/`resume` completed (absent: adopted). */
  startedAt?: Date;
}

/** LeaveAction is the leave policy applied to a VM whose switch left. */
export type LeaveAction = "keep" | "shutdown" | "destroy" | "suspend";

/** LeaveOutcome tells what leave did. */
export type LeaveOutcome = "kept" | "shutdown" | "destroyed" | "saved" | "not-running" | "missing";

/** DomainInfo is one row of `list()`. */
export interface DomainInfo {
  name: string;
  uuid: string;
  state: DomainState;
  /** reason is libvirt's numeric state reason (e.g. shut off 5 = saved). */
  reason: number;
  managedSave: boolean;
  cpuTimeNs?: bigint;
  memoryKiB?: number;
  rssKiB?: number;
  vcpus?: number;
}

/** DomainManagerOptions configure a manager for one host. */
export interface DomainManagerOptions {
  host: HostRef;
  run: VirshRunner;
  /** storage makes and deletes the host's VM disk volumes (needed only for VMs with a disk to prepare). */
  storage?: HostStorage;
  log?: Logger;
  /** timeoutMs per virsh call (default 30 s; start of a big domain can be slow). */
  timeoutMs?: number;
  /** shutdownTimeoutMs before `shutdown` falls back to `destroy` (default 30 s). */
  shutdownTimeoutMs?: number;
  /** pollMs between state checks while waiting for a shutdown (default 250 ms). */
  pollMs?: number;
  /** tmpDir holds transient XML files (default a private 0700 dir under the OS tmpdir). */
  tmpDir?: string;
}

/**
 * DomainManager performs lifecycle operations on the domains of one libvirt host. It never restarts a running
 * domain and undoes only what the failing attempt itself created.
 */
export class DomainManager {
  readonly host: HostRef;
  private readonly run: VirshRunner;
  private readonly storage: HostStorage | undefined;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly pollMs: number;
  private readonly xmlFiles: XmlFiles;

  constructor(private readonly options: DomainManagerOptions) {
    this.host = options.host;
    this.xmlFiles = new XmlFiles("rfboot-xml-", options.tmpDir);
    this.run = options.run;
    this.storage = options.storage;
    this.log = options.log ?? silentLogger;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    this.pollMs = options.pollMs ?? 250;
  }

  /** virsh runs one command on this host with the manager's timeout. */
  virsh(args: string[], opts: VirshRunOptions = {}): Promise<{ stdout: string; stderr: string }> {
    return this.run(this.host.uri, args, { timeoutMs: this.timeoutMs, ...opts });
  }

  /** state returns the domain's state and reason (`domstate --reason`), or undefined when it is not defined. */
  async state(name: string): Promise<KnownDomainState | undefined> {
    try {
      const { stdout } = await this.virsh(["domstate", name, "--reason"]);
      return parseDomstate(stdout);
    } catch (e) {
      if (isDomainMissing(e)) return undefined;
      throw e;
    }
  }

  /**
   * ensureRunning makes the domain run: adopt a running one, resume a paused one, start a shut-off (or
   * managed-saved) one, or prepare the disk, define and start a new one. On failure it rolls back what this
   * attempt created (the domain it defined, the disk it created) and rethrows.
   */
  async ensureRunning(spec: EnsureSpec): Promise<EnsureResult> {
    const t0 = performance.now();
    const timings: EnsureTimings = { totalMs: 0 };
    const lap = (k: Exclude<keyof EnsureTimings, "totalMs">, since: number) => {
      timings[k] = (timings[k] ?? 0) + (performance.now() - since);
    };
    let t = performance.now();
    const st = await (spec.state ?? this.state(spec.name));
    lap("stateMs", t);
    let createdDisk = false;
    let definedNew = false;
    // Whether the domain has a managed-save image, asked at most once (a `dominfo` unless the state says so).
    let saved: boolean | undefined;
    const hasSave = async (): Promise<boolean> =>
      (saved ??= st
        ? (st.saved ?? (st.reason === "saved" || (await this.hasManagedSave(spec.name))))
        : false);
    let definedAt: Date | undefined;
    let startedAt: Date | undefined;
    const done = (action: EnsureAction, restored = false): EnsureResult => {
      timings.totalMs = performance.now() - t0;
      this.log.debug(
        { host: this.host.name, vm: spec.name, uuid: spec.uuid, action, timings },
        "domain ensured running",
      );
      return {
        action,
        host: this.host.name,
        restored,
        createdDisk,
        timings,
        ...(definedAt ? { definedAt } : {}),
        ...(startedAt ? { startedAt } : {}),
      };
    };
    try {
      // "paused" counts as active, but it is resumed: that is a start as far as the caller's record goes.
      if (!st || st.state === "paused" || !isActive(st.state)) this.notify(spec.onStarting, spec.name);
      t = performance.now();
      createdDisk = await this.prepareDisk(spec.disk);
      lap("diskMs", t);
      if (!st || spec.redefine !== false) {
        t = performance.now();
        // A managed-save image holds the old definition and guest state: libvirt keeps it across `define` and
        // restores it on the next start, so the new definition would not apply. It goes before the define.
        if (st && !isActive(st.state) && (await hasSave())) {
          await this.virsh(["managedsave-remove", spec.name]);
          saved = false;
          this.log.info(
            { host: this.host.name, vm: spec.name },
            "managed-save image removed before redefine",
          );
        }
        await this.define(spec.name, spec.xml);
        definedNew = !st;
        lap("defineMs", t);
        const at = new Date();
        definedAt = at;
        const onDefined = spec.onDefined;
        if (onDefined) this.notify(() => onDefined(at), spec.name);
      }
      if (st && st.state === "paused") {
        t = performance.now();
        await this.runHook(spec, false);
        await this.virsh(["resume", spec.name]);
        lap("startMs", t);
        startedAt = new Date();
        return done("resumed");
      }
      if (st && isActive(st.state)) return done("adopted");
      const restored = await hasSave();
      t = performance.now();
      try {
        await this.virsh(spec.beforeRun ? ["start", spec.name, "--paused"] : ["start", spec.name]);
      } catch (e) {
        // Someone else (another attempt, an operator) started it in between: that is success, adopt it.
        if (isAlreadyRunning(e)) return done("adopted");
        throw e;
      }
      if (spec.beforeRun) {
        await this.runHook(spec, !restored);
        await this.virsh(["resume", spec.name]);
      }
      lap("startMs", t);
      startedAt = new Date();
      return done(definedNew ? "defined+started" : "started", restored);
    } catch (err) {
      await this.rollback(spec, definedNew, createdDisk, err);
      throw err;
    }
  }

  /** notify runs a caller's progress callback; its failure is logged, never the attempt's failure. */
  private notify(cb: (() => void) | undefined, vm: string): void {
    if (!cb) return;
    try {
      cb();
    } catch (e) {
      this.log.warn({ host: this.host.name, vm, err: e }, "ensureRunning progress callback failed");
    }
  }

  /** runHook awaits spec.beforeRun; its failure is logged, the domain is resumed all the same. */
  private async runHook(spec: EnsureSpec, boot: boolean): Promise<void> {
    if (!spec.beforeRun) return;
    try {
      await spec.beforeRun(boot);
    } catch (e) {
      this.log.warn({ host: this.host.name, vm: spec.name, err: e }, "ensureRunning beforeRun hook failed");
    }
  }

  private async rollback(
    spec: EnsureSpec,
    definedNew: boolean,
    createdDisk: boolean,
    err: unknown,
  ): Promise<void> {
    const undo: string[] = [];
    if (definedNew) {
      try {
        await this.virsh(["destroy", spec.name]).catch((e: unknown) => {
          if (!isNotRunning(e) && !isDomainMissing(e)) throw e;
        });
        await this.virsh(["undefine", spec.name, "--managed-save"]);
        undo.push("undefined");
      } catch (e) {
        if (!isDomainMissing(e)) this.log.warn({ vm: spec.name, err: e }, "rollback: undefine failed");
      }
    }
    if (createdDisk && spec.disk && spec.disk.kind !== "none") {
      try {
        await this.storage?.removeDisk(spec.disk);
        undo.push("disk removed");
      } catch (e) {
        this.log.warn({ vm: spec.name, err: e }, "rollback: disk volume not deleted");
      }
    }
    this.log.warn({ host: this.host.name, vm: spec.name, undo, err }, "ensureRunning failed; rolled back");
  }

  /**
   * fullState is `state` with `saved` filled in for a domain that is not active (a `dominfo` unless the
   * reason says "saved"): what a start will find, read ahead of it.
   */
  async fullState(name: string): Promise<KnownDomainState | undefined> {
    const st = await this.state(name);
    if (!st || isActive(st.state)) return st;
    return { ...st, saved: st.reason === "saved" || (await this.hasManagedSave(name)) };
  }

  private async hasManagedSave(name: string): Promise<boolean> {
    try {
      const { stdout } = await this.virsh(["dominfo", name]);
      return parseDominfo(stdout)["Managed save"] === "yes";
    } catch {
      return false;
    }
  }

  /**
   * removeManagedSave deletes the domain's managed-save image (`virsh managedsave-remove`), so its next start
   * boots; true when there was one, false when there was none or no such domain.
   */
  async removeManagedSave(name: string): Promise<boolean> {
    if (!(await this.hasManagedSave(name))) return false;
    try {
      await this.virsh(["managedsave-remove", name]);
      return true;
    } catch (e) {
      if (isDomainMissing(e)) return false;
      throw e;
    }
  }

  /** prepareDisk creates the VM's overlay or copy volume when it does not exist yet (see storage.ts). */
  prepareDisk(disk: DiskPlan | undefined): Promise<boolean> {
    if (!disk || disk.kind === "none") return Promise.resolve(false);
    return this.withStorage().prepareDisk(disk);
  }

  /** removeDisk deletes a VM's overlay or copy volume (a `none` disk is nothing to delete). */
  async removeDisk(disk: DiskPlan): Promise<void> {
    if (disk.kind !== "none") await this.withStorage().removeDisk(disk);
  }

  private withStorage(): HostStorage {
    if (!this.storage)
      throw new RfbootError(`host ${this.host.name} has no storage pool configured for VM disks`);
    return this.storage;
  }

  /** define upserts the domain from XML written to a private temp file (0600); the stable uuid makes it an upsert. */
  async define(name: string, xml: string): Promise<void> {
    await this.xmlFiles.withFile(name, xml, (file) => this.virsh(["define", file]));
  }

  /**
   * leave applies a leave policy: keep; shutdown (ACPI, then destroy after the timeout); destroy; suspend =
   * `managedsave` (the next start restores the saved image instead of booting).
   */
  async leave(name: string, action: LeaveAction): Promise<LeaveOutcome> {
    if (action === "keep") return "kept";
    const st = await this.state(name);
    if (!st) return "missing";
    if (!isActive(st.state)) return "not-running";
    try {
      switch (action) {
        case "destroy":
          await this.virsh(["destroy", name]);
          return "destroyed";
        case "suspend":
          await this.virsh(["managedsave", name], { timeoutMs: Math.max(this.timeoutMs, 120_000) });
          return "saved";
        case "shutdown":
          return await this.shutdown(name);
      }
    } catch (e) {
      if (isNotRunning(e)) return "not-running";
      if (isDomainMissing(e)) return "missing";
      throw e;
    }
  }

  private async shutdown(name: string): Promise<LeaveOutcome> {
    await this.virsh(["shutdown", name]);
    const deadline = performance.now() + this.shutdownTimeoutMs;
    while (performance.now() < deadline) {
      const st = await this.state(name);
      if (!st) return "missing";
      if (!isActive(st.state)) return "shutdown";
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    this.log.info({ host: this.host.name, vm: name }, "shutdown timed out; destroying");
    try {
      await this.virsh(["destroy", name]);
    } catch (e) {
      if (isNotRunning(e)) return "shutdown";
      throw e;
    }
    return "destroyed";
  }

  /**
   * remove destroys and undefines the domain (with its managed-save image) and deletes its rfboot-made disk
   * volume (`disk.path` of an overlay or copy; never the base). Returns false when there was no such domain.
   */
  async remove(name: string, disk?: DiskPlan): Promise<boolean> {
    let found = true;
    try {
      await this.virsh(["destroy", name]);
    } catch (e) {
      if (isDomainMissing(e)) found = false;
      else if (!isNotRunning(e)) throw e;
    }
    if (found) {
      try {
        await this.virsh(["undefine", name, "--managed-save"]);
      } catch (e) {
        if (!isDomainMissing(e)) throw e;
        found = false;
      }
    }
    if (disk && disk.kind !== "none") await this.withStorage().removeDisk(disk);
    return found;
  }

  /**
   * list returns every domain of the host with state, managed-save flag and (with `stats`) CPU and memory
   * figures, in three virsh calls: `list --all --uuid --name`, `domstats`, `list --all --name --with-managed-save`.
   */
  async list(options: { stats?: boolean } = {}): Promise<DomainInfo[]> {
    const ids = await this.virsh(["list", "--all", "--uuid", "--name"]);
    const statArgs = options.stats
      ? ["domstats", "--state", "--cpu-total", "--balloon", "--vcpu"]
      : ["domstats", "--state"];
    const [byName, saved] = await Promise.all([
      this.virsh(statArgs).then(
        (r) => parseDomstats(r.stdout),
        (e: unknown) => {
          if (!statsUnsupported(e)) throw e;
          return this.statesByList();
        },
      ),
      this.virsh(["list", "--all", "--name", "--with-managed-save"]),
    ]);
    const savedSet = new Set(parseNameList(saved.stdout));
    return parseUuidNameList(ids.stdout).map(({ uuid, name }) => {
      const s = byName.get(name);
      const info: DomainInfo = {
        name,
        uuid,
        state: DOMAIN_STATE_CODES[Number(s?.["state.state"] ?? 0)] ?? "nostate",
        reason: Number(s?.["state.reason"] ?? 0),
        managedSave: savedSet.has(name),
      };
      if (s?.["cpu.time"] !== undefined) info.cpuTimeNs = BigInt(s["cpu.time"]);
      if (s?.["balloon.current"] !== undefined) info.memoryKiB = Number(s["balloon.current"]);
      if (s?.["balloon.rss"] !== undefined) info.rssKiB = Number(s["balloon.rss"]);
      if (s?.["vcpu.current"] !== undefined) info.vcpus = Number(s["vcpu.current"]);
      return info;
    });
  }

  /**
   * statesByList gives each domain's state where the driver has no `domstats` (LXC): from `list` filtered by
   * state, in domstats' own terms (`state.state` codes), without the reason or the counters.
   */
  private async statesByList(): Promise<Map<string, Record<string, string>>> {
    const byState = await Promise.all(
      (
        [
          ["--state-running", 1],
          ["--state-paused", 3],
          ["--state-shutoff", 5],
        ] as const
      ).map(async ([flag, code]) => ({
        code,
        names: parseNameList((await this.virsh(["list", "--all", "--name", flag])).stdout),
      })),
    );
    const out = new Map<string, Record<string, string>>();
    for (const { code, names } of byState)
      for (const n of names) out.set(n, { "state.state": String(code), "state.reason": "0" });
    return out;
  }

  /** dominfo returns `virsh dominfo NAME` as key/value pairs, or undefined when the domain is missing. */
  async dominfo(name: string): Promise<Record<string, string> | undefined> {
    try {
      return parseDominfo((await this.virsh(["dominfo", name])).stdout);
    } catch (e) {
      if (isDomainMissing(e)) return undefined;
      throw e;
    }
  }

  /** ping checks that the host answers (`virsh version`-free: `uri` is the cheapest round trip). */
  async ping(): Promise<void> {
    await this.virsh(["uri"]);
  }

  /** dispose removes the manager's private temp dir. */
  dispose(): Promise<void> {
    return this.xmlFiles.dispose();
  }
}

/** statsUnsupported: the driver has no `domstats` (libvirt's LXC driver lacks virConnectGetAllDomainStats). */
function statsUnsupported(e: unknown): boolean {
  return e instanceof VirshError && /virConnectGetAllDomainStats/.test(e.stderr || e.message);
}
