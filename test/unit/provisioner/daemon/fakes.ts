/**
 * Fakes for the daemon's unit tests: a fake clock (time moves only when a test advances it), a recording
 * store (implements DaemonStore), a scripted libvirt (a VirshRunner keeping domain state per host URI), a
 * scripted switch source, an in-memory console log and a scripted console stream. No sockets, no processes,
 * no sleeping.
 */
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { ConsoleError, StoreError } from "../../../../src/common/errors.js";
import type { DatapathInfo, DownEvent, PortEvent, UpEvent } from "../../../../src/controller/index.js";
import type { Cancel, DaemonClock } from "../../../../src/provisioner/clock.js";
import type { SwitchSource } from "../../../../src/provisioner/daemon.js";
import type {
  DaemonStore,
  Lease,
  OutboxStats,
  PortRegisterWatch,
  RecordPatch,
  VmRecord,
  WriteOutcome,
} from "../../../../src/provisioner/index.js";
import type { PortRegisterResult } from "../../../../src/provisioner/store/readiness.js";
import type { RfconfigRow, StoreEvent } from "../../../../src/provisioner/store/types.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";
import type { ConsoleReader, DomainConsoleWatch } from "../../../../src/provisioner/vm-readiness.js";

/** settle lets every queued promise callback and I/O completion run (no timers: those are the clock's). */
export async function settle(rounds = 30): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** FakeClock runs timers only when `advance` moves time past them, in time order. */
export class FakeClock implements DaemonClock {
  private t = 0;
  private readonly wall0 = Date.parse("2026-03-01T12:00:00Z");
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  date(): Date {
    return new Date(this.wall0 + this.t);
  }

  after(ms: number, fn: () => void): Cancel {
    const id = this.seq++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return () => this.timers.delete(id);
  }

  /** pending lists the due times of the armed timers (sorted). */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at).sort((a, b) => a - b);
  }

  /** advance moves time by `ms`, running each timer due on the way (and what its callbacks started). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** FakeWatch is a PortRegister watch the test completes or times out. */
export interface FakeWatch {
  vmId: string;
  expectPorts: readonly string[];
  timeoutMs: number | undefined;
  stopped: boolean;
  register(): void;
  timeout(): void;
}

/**
 * RecordingStore keeps records and events in memory, records every call, and can be told to fail a
 * method (with an outage or a refusal) or to report itself offline.
 */
export class RecordingStore extends EventEmitter implements DaemonStore {
  readonly records = new Map<string, VmRecord>();
  readonly events: StoreEvent[] = [];
  readonly rows: RfconfigRow[][] = [];
  /** deleted: every deleteRfconfigRows call, in order. */
  readonly deleted: RfconfigRow[][] = [];
  readonly calls: string[] = [];
  readonly watches: FakeWatch[] = [];
  readonly leases = new Map<string, Lease>();
  online = true;
  /** failures: method name -> error to reject with (once per entry, in order). */
  readonly failures = new Map<string, Error[]>();
  /** held: bookkeeping holds taken and not yet released (holdBookkeeping); holds: all taken. */
  held = 0;
  holds = 0;
  /** claimGate, while set, keeps every claim waiting (after it was made) until the test opens it. */
  private claimGate: Promise<void> | undefined;

  constructor(private readonly clock: FakeClock) {
    super();
  }

  /** failNext makes the next call of `method` reject with `err`. */
  failNext(method: string, err: Error): void {
    const list = this.failures.get(method) ?? [];
    list.push(err);
    this.failures.set(method, list);
  }

  private check(method: string): void {
    this.calls.push(method);
    const err = this.failures.get(method)?.shift();
    if (err) throw err;
  }

  /** eventsOf lists the kinds of the events logged for a dpid. */
  eventsOf(dpidHex: string): string[] {
    return this.events.filter((e) => e.dpid === dpidHex).map((e) => e.kind);
  }

  async listRecords(): Promise<VmRecord[]> {
    this.check("listRecords");
    return [...this.records.values()];
  }

  async getRecord(dpidHex: string): Promise<VmRecord | undefined> {
    this.check("getRecord");
    return this.records.get(dpidHex);
  }

  async patchRecord(dpidHex: string, patch: RecordPatch): Promise<WriteOutcome> {
    this.check("patchRecord");
    const old = this.records.get(dpidHex);
    const at = this.clock.date();
    const rec = {
      _id: dpidHex,
      dpid: BigInt(`0x${dpidHex}`).toString(10),
      dpidHex,
      state: "joined",
      createdAt: at,
      ...old,
      ...patch,
      ...(patch.switch ? { switch: { ...old?.switch, ...patch.switch } } : {}),
      updatedAt: at,
    } as VmRecord;
    this.records.set(dpidHex, rec);
    return "written";
  }

  async logEvent(event: Omit<StoreEvent, "at"> & { at?: Date }): Promise<WriteOutcome> {
    this.check("logEvent");
    this.events.push({ ...event, at: event.at ?? this.clock.date() });
    return "written";
  }

  async upsertRfconfigRows(rows: readonly RfconfigRow[]): Promise<WriteOutcome> {
    this.check("upsertRfconfigRows");
    this.rows.push([...rows]);
    // While "offline" a real store buffers the write and answers queued.
    return this.online ? "written" : "queued";
  }

  async deleteRfconfigRows(rows: readonly RfconfigRow[]): Promise<number> {
    this.check("deleteRfconfigRows");
    this.deleted.push([...rows]);
    return rows.length;
  }

  /** holdClaims makes the claims from now on wait until the returned function is called. */
  holdClaims(): () => void {
    let open = () => undefined as void;
    this.claimGate = new Promise<void>((r) => (open = r));
    return () => {
      this.claimGate = undefined;
      open();
    };
  }

  holdBookkeeping(): () => void {
    this.held++;
    this.holds++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.held--;
    };
  }

  async claim(dpidHex: string, owner: string, ttlMs: number): Promise<boolean> {
    this.check("claim");
    // The decision is made when the answer comes (a lease taken by another instance meanwhile wins).
    if (this.claimGate) await this.claimGate;
    const l = this.leases.get(dpidHex);
    if (l && l.owner !== owner && l.expiresAt.getTime() > this.clock.date().getTime()) return false;
    this.leases.set(dpidHex, {
      dpidHex,
      owner,
      expiresAt: new Date(this.clock.date().getTime() + ttlMs),
      generation: (l?.generation ?? 0) + (l?.owner === owner ? 0 : 1),
    });
    return true;
  }

  async renewAll(
    owner: string,
    ttlMs: number,
    _now?: Date,
    dpids: readonly string[] = [],
  ): Promise<{ renewed: string[]; lost: string[]; wanted: string[] }> {
    this.check("renewAll");
    const renewed: string[] = [];
    const lost: string[] = [];
    for (const d of dpids) {
      const l = this.leases.get(d);
      if (l?.owner === owner) {
        this.leases.set(d, { ...l, expiresAt: new Date(this.clock.date().getTime() + ttlMs) });
        renewed.push(d);
      } else lost.push(d);
    }
    const wanted = renewed.filter((d) => {
      const w = this.wants.get(d);
      return w !== undefined && w !== owner;
    });
    return { renewed, lost, wanted };
  }

  /** wants: dpid -> the owner that asked for its lease (want), until it withdraws (unwant). */
  readonly wants = new Map<string, string>();

  async want(dpidHex: string, owner: string): Promise<void> {
    this.check("want");
    this.wants.set(dpidHex, owner);
  }

  async unwant(dpidHex: string, owner: string): Promise<void> {
    this.check("unwant");
    if (this.wants.get(dpidHex) === owner) this.wants.delete(dpidHex);
  }

  async release(dpidHex: string, owner: string): Promise<boolean> {
    this.check("release");
    if (this.leases.get(dpidHex)?.owner !== owner) return false;
    this.leases.delete(dpidHex);
    return true;
  }

  async lease(dpidHex: string): Promise<Lease | undefined> {
    this.check("lease");
    return this.leases.get(dpidHex);
  }

  watchPortRegister(
    vmId: string,
    _since: Date,
    options: { expectPorts?: readonly string[]; timeoutMs?: number } = {},
  ): PortRegisterWatch {
    this.calls.push("watchPortRegister");
    let settle!: { resolve: (r: PortRegisterResult) => void; reject: (e: Error) => void };
    const ready = new Promise<PortRegisterResult>((resolve, reject) => (settle = { resolve, reject }));
    ready.catch(() => undefined);
    const w: FakeWatch = {
      vmId,
      expectPorts: options.expectPorts ?? [],
      timeoutMs: options.timeoutMs,
      stopped: false,
      register: () => settle.resolve({ vmId, ports: [], at: this.clock.date() }),
      timeout: () => settle.reject(new StoreError("no PortRegister", "watchPortRegister")),
    };
    this.watches.push(w);
    return {
      ready,
      stop: () => {
        w.stopped = true;
        settle.reject(new StoreError("stopped", "watchPortRegister"));
      },
    };
  }

  stats(): OutboxStats {
    return { pending: 0, written: 0, failed: 0, droppedEvents: 0, retries: 0, online: this.online };
  }

  pending(): number {
    return 0;
  }

  async close(): Promise<number> {
    this.calls.push("close");
    return 0;
  }
}

/** outage is a StoreError labelled as an outage (what MongoStore throws when the server is away). */
export function outage(operation: string): StoreError {
  return new StoreError(`${operation} failed: MongoDB is unreachable`, operation, { outage: true });
}

/** refusal is a StoreError MongoDB answered with (not an outage). */
export function refusal(operation: string): StoreError {
  return new StoreError(`${operation} failed: not authorized on db`, operation, { outage: false });
}

type DomState = "running" | "shut off" | "paused";

/** LibvirtHost is one scripted libvirt host: its domains and whether it answers. */
export interface LibvirtHost {
  domains: Map<string, { uuid: string; state: DomState; saved: boolean; xml?: string }>;
  down: boolean;
  /** fail: command -> stderr texts, used once each, in order (e.g. `start` fails twice). */
  fail: Map<string, string[]>;
  /** memory: what `nodememstats` reports (KiB); undefined: the driver has none, as libvirt's test driver. */
  memory?: { totalKiB: number; freeKiB: number; buffersKiB: number; cachedKiB: number };
}

/**
 * FakeLibvirt is a scripted VirshRunner: each URI is a host with domains that `define`, `start`, `destroy`,
 * `managedsave`, `managedsave-remove`, `resume` and `undefine` change, and that `domstate`, `dominfo`, `list` and `domstats`
 * report; `nodeinfo` answers 4 CPUs and 8 GiB, `nodememstats` what the host's `memory` says (unsupported, as
 * on the test driver, without it). A host marked `down` fails every call the way virsh does when libvirtd is
 * gone.
 */
export class FakeLibvirt {
  readonly calls: { uri: string; args: string[] }[] = [];
  private readonly byUri = new Map<string, LibvirtHost>();

  host(uri: string): LibvirtHost {
    let h = this.byUri.get(uri);
    if (!h) {
      h = { domains: new Map(), down: false, fail: new Map() };
      this.byUri.set(uri, h);
    }
    return h;
  }

  /** argsOf lists the argument arrays sent to `uri` whose first argument is `cmd`. */
  argsOf(uri: string, cmd: string): string[][] {
    return this.calls.filter((c) => c.uri === uri && c.args[0] === cmd).map((c) => c.args);
  }

  readonly run: VirshRunner = async (uri, args) => {
    this.calls.push({ uri, args: [...args] });
    const h = this.host(uri);
    const err = (stderr: string) => makeVirshError(uri, args, stderr, 1);
    if (h.down)
      throw err(
        `error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/x': Connection refused\n`,
      );
    const cmd = args[0] ?? "";
    const injected = h.fail.get(cmd)?.shift();
    if (injected !== undefined) throw err(injected);
    const name = args[1] ?? "";
    const dom = h.domains.get(name);
    const missing = () => err(`error: failed to get domain '${name}'\n`);
    const ok = (stdout = "") => ({ stdout, stderr: "" });
    switch (cmd) {
      case "domstate": {
        if (!dom) throw missing();
        return ok(`${dom.state}${dom.saved && dom.state === "shut off" ? " (saved)" : ""}\n`);
      }
      case "dominfo": {
        if (!dom) throw missing();
        return ok(
          `Name:           ${name}\nState:          ${dom.state}\nManaged save:   ${dom.saved ? "yes" : "no"}\n`,
        );
      }
      case "define": {
        const xml = readFileSync(name, "utf8");
        const n = /<name>([^<]+)<\/name>/.exec(xml)?.[1] ?? "";
        const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1] ?? "";
        const old = h.domains.get(n);
        h.domains.set(n, { uuid, state: old?.state ?? "shut off", saved: old?.saved ?? false, xml });
        return ok(`Domain '${n}' defined from ${name}\n`);
      }
      case "start": {
        if (!dom) throw missing();
        if (dom.state === "running") throw err("error: Domain is already active\n");
        dom.state = args.includes("--paused") ? "paused" : "running";
        dom.saved = false;
        return ok(`Domain '${name}' started\n`);
      }
      case "resume": {
        if (!dom) throw missing();
        dom.state = "running";
        return ok();
      }
      case "destroy": {
        if (!dom) throw missing();
        if (dom.state !== "running" && dom.state !== "paused")
          throw err("error: Requested operation is not valid: domain is not running\n");
        dom.state = "shut off";
        return ok();
      }
      case "managedsave": {
        if (!dom) throw missing();
        dom.state = "shut off";
        dom.saved = true;
        return ok();
      }
      case "managedsave-remove": {
        if (!dom) throw missing();
        dom.saved = false;
        return ok(`Removed managedsave image for domain '${name}'\n`);
      }
      case "undefine": {
        if (!dom) throw missing();
        h.domains.delete(name);
        return ok();
      }
      case "list": {
        const all = [...h.domains];
        if (args.includes("--with-managed-save"))
          return ok(
            all
              .filter(([, d]) => d.saved)
              .map(([n]) => `${n}\n`)
              .join(""),
          );
        return ok(all.map(([n, d]) => ` ${d.uuid} ${n}\n`).join(""));
      }
      case "dumpxml": {
        // `dumpxml [--inactive] NAME`: the defined document, with libvirt's id attribute while it runs.
        const d = h.domains.get(args.at(-1) ?? "");
        if (!d?.xml) throw missing();
        const live = !args.includes("--inactive") && d.state === "running";
        return ok(live ? d.xml.replace(/<domain\b/, "<domain id='7'") : d.xml);
      }
      case "attach-device":
      case "detach-device": {
        // `OP NAME FILE FLAGS...`: one device document; live and definition are one document here.
        if (!dom?.xml) throw missing();
        const nic = readFileSync(args[2] ?? "", "utf8").trim();
        const mac = /<mac address=['"]([^'"]+)['"]/.exec(nic)?.[1] ?? "";
        if (cmd === "attach-device") dom.xml = dom.xml.replace("</devices>", `${nic}</devices>`);
        else
          dom.xml = dom.xml.replace(
            new RegExp(
              `<interface\\b(?:(?!</interface>)[\\s\\S])*${mac}(?:(?!</interface>)[\\s\\S])*</interface>`,
            ),
            "",
          );
        return ok(`Device ${cmd === "attach-device" ? "attached" : "detached"} successfully\n`);
      }
      case "nodeinfo":
        return ok("CPU model:           x86_64\nCPU(s):              4\nMemory size:         8388608 KiB\n");
      case "nodememstats": {
        const m = h.memory;
        if (!m)
          throw err(
            "error: Unable to get number of memory stats\nerror: this function is not supported by the connection driver: virNodeGetMemoryStats\n",
          );
        return ok(
          `total  : ${m.totalKiB} KiB\nfree   : ${m.freeKiB} KiB\nbuffers: ${m.buffersKiB} KiB\ncached : ${m.cachedKiB} KiB\n`,
        );
      }
      case "domstats": {
        const code = { running: 1, paused: 3, "shut off": 5 } as const;
        return ok(
          [...h.domains]
            .map(([n, d]) => `Domain: '${n}'\n  state.state=${code[d.state]}\n  state.reason=0\n`)
            .join("\n"),
        );
      }
      default:
        return ok();
    }
  };
}

/** FakeSwitches is a scripted SwitchSource: the test makes switches join and leave. */
export class FakeSwitches extends EventEmitter implements SwitchSource {
  readonly up = new Map<bigint, UpEvent>();
  readonly disconnected: { dpid: bigint; reason: string }[] = [];

  override on(event: "up", listener: (e: UpEvent) => void): this;
  override on(event: "down", listener: (e: DownEvent) => void): this;
  override on(event: "port", listener: (e: PortEvent) => void): this;
  override on(event: string, listener: (...a: never[]) => void): this {
    return super.on(event, listener as (...a: unknown[]) => void);
  }

  start(): Promise<{ host: string; port: number }> {
    return Promise.resolve({ host: "127.0.0.1", port: 0 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  datapaths(): DatapathInfo[] {
    return [...this.up.values()];
  }

  disconnect(dpid: bigint, reason: string): boolean {
    const connected = this.up.has(dpid);
    this.disconnected.push({ dpid, reason });
    this.leave(dpid, reason);
    return connected;
  }

  /** join reports a switch up with `ports` (OpenFlow port numbers) at wire version `wireVersion`. */
  join(dpid: bigint, ports: readonly number[] = [1, 2], wireVersion = 4): UpEvent {
    const e: UpEvent = {
      type: "up",
      mode: "listen",
      dpid,
      version: wireVersion === 1 ? "1.0" : "1.3",
      wireVersion,
      ports: ports.map((no) => ({
        no,
        name: `p${no}`,
        mac: `02:00:00:00:00:${no.toString(16).padStart(2, "0")}`,
      })),
      peer: `127.0.0.1:${40000 + Number(dpid % 1000n)}`,
      auxiliaryId: 0,
    };
    this.up.set(dpid, e);
    this.emit("up", e);
    return e;
  }

  /** port reports a PORT_STATUS of a connected switch: port `no` added, deleted or modified. */
  port(dpid: bigint, reason: PortEvent["reason"], no: number): void {
    const port = { no, name: `p${no}`, mac: `02:00:00:00:00:${no.toString(16).padStart(2, "0")}` };
    this.emit("port", { type: "port", dpid, reason, port } satisfies PortEvent);
  }

  /** leave reports a switch down. */
  leave(dpid: bigint, reason = "closed"): void {
    this.up.delete(dpid);
    this.emit("down", { type: "down", dpid, reason, peer: "127.0.0.1:1" } satisfies DownEvent);
  }
}

/** MemoryConsole is a ConsoleReader over in-memory texts a test appends to. */
export class MemoryConsole implements ConsoleReader {
  readonly files = new Map<string, string>();

  append(path: string, text: string): void {
    this.files.set(path, (this.files.get(path) ?? "") + text);
  }

  size(path: string): Promise<number> {
    return Promise.resolve(this.files.get(path)?.length ?? 0);
  }

  read(path: string, offset: number, max: number): Promise<{ size: number; text: string } | undefined> {
    const t = this.files.get(path);
    if (t === undefined) return Promise.resolve(undefined);
    const from = t.length < offset ? 0 : offset;
    return Promise.resolve({ size: t.length, text: t.slice(from, from + max) });
  }
}

/** ConsoleStreamWatch is one console stream watch the daemon started, as FakeDomainConsole scripts it. */
export interface ConsoleStreamWatch {
  uri: string;
  domain: string;
  marker: RegExp;
  timeoutMs: number;
  /** stateAtStart is the domain's state on the fake host when the watch started. */
  stateAtStart: string | undefined;
  /**
   * stateWhenOpened is the domain's state when the console was opened: at once, or once the watch's `when`
   * resolved (undefined until then, or if it never did).
   */
  stateWhenOpened: string | undefined;
  /** attach makes virsh's banner end (the watch's onAttached). */
  attach(): void;
  /** print is a guest console line: the watch resolves when it matches. */
  print(line: string): void;
  /** fail ends the watch with a ConsoleError of `kind` (timeout: the watch's own time ran out). */
  fail(kind: "timeout" | "exited"): void;
  readonly settled: boolean;
  readonly aborted: boolean;
}

/** FakeDomainConsole is a scripted DomainConsoleWatch: the test attaches, prints and ends each watch. */
export class FakeDomainConsole {
  readonly watches: ConsoleStreamWatch[] = [];
  /** autoAttach: each watch attaches as soon as it starts (virsh's banner comes at once). */
  autoAttach = true;

  constructor(private readonly libvirt: FakeLibvirt) {}

  readonly watch: DomainConsoleWatch = (o) =>
    new Promise((resolve, reject) => {
      let settled = false;
      const end = (f: () => void) => {
        if (settled) return;
        settled = true;
        f();
      };
      const w: ConsoleStreamWatch = {
        uri: o.uri,
        domain: o.domain,
        marker: o.marker,
        timeoutMs: o.timeoutMs,
        stateAtStart: this.libvirt.host(o.uri).domains.get(o.domain)?.state,
        stateWhenOpened: undefined,
        attach: () => o.onAttached?.(),
        print: (line) => {
          // Nothing is read before the console is opened (its `when`).
          if (opened && o.marker.test(line)) end(() => resolve({ line, elapsedMs: 0 }));
        },
        fail: (kind) => end(() => reject(new ConsoleError(`fake ${kind}`, kind, o.domain, o.uri))),
        get settled() {
          return settled;
        },
        get aborted() {
          return o.signal?.aborted ?? false;
        },
      };
      o.signal?.addEventListener("abort", () =>
        end(() => reject(new ConsoleError("aborted", "aborted", o.domain, o.uri))),
      );
      this.watches.push(w);
      let opened = false;
      const open = () => {
        opened = true;
        w.stateWhenOpened = this.libvirt.host(o.uri).domains.get(o.domain)?.state;
        if (this.autoAttach) w.attach();
      };
      if (o.when) o.when.then(open, () => undefined);
      else open();
    });
}
