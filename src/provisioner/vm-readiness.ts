/**
 * VM readiness: after a VM runs, watch for the sign that its guest booted (a console marker, rfclient's
 * PortRegister on RouteFlow's IPC channel, or nothing), then record `ready`; record a timeout when the sign
 * never comes. The marker is read from the domain's console through libvirt, over the VM's host URI, so a VM
 * on a remote host is seen like a local one; the console log file is read only where the rfboot machine
 * sees it and no console stream exists. Time comes from the DaemonClock, console logs are read through a
 * ConsoleReader and the console stream through a DomainConsoleWatch, so the rules are tested without files,
 * processes or sleeping.
 */
import { open, stat } from "node:fs/promises";
import { ConfigError, ConsoleError, errorMessage } from "../common/errors.js";
import { redactUri } from "../common/log.js";
import { sleep, systemClock, type DaemonClock } from "./clock.js";
import { isRemoteUri, type HostConfig, type ResolvedVm } from "./config/index.js";
import type { DaemonContext } from "./daemon-context.js";
import type { Datapath } from "./datapath.js";
import { watchDomainConsole, type WatchConsoleOptions } from "./libvirt/index.js";

/**
 * ReadinessMode: `boot` waits for the boot marker / PortRegister; `restored` (from managedsave, or resumed)
 * takes the first new console output; `was-ready` (adopted, ready since its last start) is ready at once.
 */
export type ReadinessMode = "boot" | "restored" | "was-ready";

/** RESTORED_QUIET_MS: how long a restored guest may stay silent on its console before it counts as ready. */
export const RESTORED_QUIET_MS = 5_000;

/** ATTACH_WAIT_MS bounds how long a domain started paused waits for its console before it is resumed anyway. */
export const ATTACH_WAIT_MS = 10_000;

/** ConsoleReader reads a VM's console log file; a missing file reads as empty. */
export interface ConsoleReader {
  /** size is the file's length in bytes (0 when it does not exist yet). */
  size(path: string): Promise<number>;
  /** read returns the file's size and up to `max` bytes from `offset` (latin1); undefined when absent. */
  read(path: string, offset: number, max: number): Promise<{ size: number; text: string } | undefined>;
}

/** fileConsole reads console logs from the local file system. */
export const fileConsole: ConsoleReader = {
  async size(path) {
    // One stat (a start awaits it): an open, fstat and close were three trips to the thread pool.
    try {
      return (await stat(path)).size;
    } catch {
      return 0; // not written yet: the guest's output starts at 0
    }
  },
  async read(path, offset, max) {
    let fh;
    try {
      fh = await open(path, "r");
    } catch {
      return undefined; // libvirt creates the file when the domain starts
    }
    try {
      const { size } = await fh.stat();
      const from = size < offset ? 0 : offset;
      const buf = Buffer.alloc(Math.max(0, Math.min(size - from, max)));
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      return { size, text: buf.subarray(0, bytesRead).toString("latin1") };
    } finally {
      await fh.close();
    }
  },
};

/**
 * watchConsoleMarker polls a console log from byte `from` until `re` matches (true), the clock passes
 * `deadline` (a `clock.now()` value) or `signal` aborts (false). A file that shrinks was truncated by a new
 * boot and is read again from its start.
 */
export async function watchConsoleMarker(
  path: string,
  re: RegExp,
  from: number,
  deadline: number,
  signal: AbortSignal,
  intervalMs = 50,
  io: { clock?: DaemonClock; console?: ConsoleReader } = {},
): Promise<boolean> {
  const clock = io.clock ?? systemClock;
  const reader = io.console ?? fileConsole;
  let offset = from;
  let carry = "";
  while (!signal.aborted && clock.now() < deadline) {
    try {
      const got = await reader.read(path, offset, 1 << 20);
      if (got) {
        if (got.size < offset) offset = 0;
        offset += Buffer.byteLength(got.text, "latin1");
        const text = carry + got.text;
        if (re.test(text)) return true;
        carry = text.slice(-256);
      }
    } catch {
      // unreadable for now (permissions being set up by libvirt): poll again
    }
    await sleep(clock, Math.min(intervalMs, Math.max(0, deadline - clock.now())), signal);
  }
  return false;
}

/**
 * DomainConsoleWatch reads a domain's console through libvirt until a line matches (resolves) or the watch
 * times out or is aborted (rejects with a ConsoleError), calling `onAttached` when the console is about to
 * be opened; the default is watchDomainConsole.
 */
export type DomainConsoleWatch = (
  opts: Pick<
    WatchConsoleOptions,
    "uri" | "domain" | "marker" | "timeoutMs" | "signal" | "onAttached" | "onMatch" | "when"
  >,
) => Promise<unknown>;

/** ConsoleStream names the domain whose console is read through libvirt instead of a log file. */
export interface ConsoleStream {
  uri: string;
  domain: string;
}

/** ConsolePlan says where a VM's console output is read for readiness on one host. */
export interface ConsolePlan {
  /** stream is the domain's console through libvirt (the host's URI): the marker's source when present. */
  stream?: ConsoleStream;
  /**
   * early: the domain starts paused and is resumed once the stream is attached. QEMU's pty drops what the
   * guest prints while nobody reads it, so a boot marker printed before the attach would never be seen.
   */
  early: boolean;
  /**
   * prepare: the console's virsh is started and connected while the domain starts, and reads once it runs.
   * LXC's pty keeps what the guest prints before anyone reads, so no paused start is needed, only no delay.
   */
  prepare?: true;
  /** log is the console log file when the rfboot machine can read it (a local host). */
  log?: string;
}

/** Hypervisors whose libvirt driver has no console stream (the test driver lacks virDomainOpenConsole). */
const NO_STREAM = new Set(["test"]);

/**
 * consolePlan decides where readiness reads `vm`'s console on `host`, given its console log path (`log`,
 * undefined when logging is off). LXC: the stream only (its pty keeps early output, no log exists). QEMU,
 * KVM, Xen with a pty: the stream, attached early. Without a pty the log file is the only source: it is
 * written on the VM's host, so a remote host with a console marker cannot work and is a ConfigError.
 */
export function consolePlan(
  vm: ResolvedVm,
  host: HostConfig,
  log: string | undefined,
  marker: string | null,
): ConsolePlan {
  const local = !isRemoteUri(host.uri);
  const pty = vm.settings.console.pty;
  const stream = { uri: host.uri, domain: vm.name };
  // LXC has no console log at all: the stream is the only source (without a pty, virsh console says so).
  if (vm.hypervisor === "lxc") return { stream, early: false, prepare: true };
  if (pty && !NO_STREAM.has(vm.hypervisor)) {
    return { stream, early: marker !== null, ...(local && log ? { log } : {}) };
  }
  if (!local && marker !== null) {
    throw new ConfigError(
      `readiness.consoleMarker cannot be seen for VM ${vm.name} on host ${host.name} (${redactUri(host.uri)}): ` +
        "without console.pty the marker is only in the console log file, which is written on that host. " +
        "Set console.pty: true (the marker is then read through libvirt), or readiness.consoleMarker: null " +
        "(with readiness.portRegister: true for a sign of life)",
      "console.pty",
      false,
    );
  }
  return { early: false, ...(local && log ? { log } : {}) };
}

/** EarlyConsole is a console watch started while the domain is paused, before its guest runs (attach). */
export interface EarlyConsole {
  readonly ac: AbortController;
  /** boot: a fresh boot (the marker is awaited); false: a restore or resume (the first output is). */
  readonly boot: boolean;
  /** deadline is the readiness deadline (a `clock.now()` value). */
  readonly deadline: number;
  /** match settles like the DomainConsoleWatch. */
  readonly match: Promise<unknown>;
  /** attached settles once the console is attached, the watch ended, or ATTACH_WAIT_MS passed. */
  readonly attached: Promise<void>;
  /**
   * running, on a console prepared before the domain started (`prepare`), says the domain runs now: the
   * console is opened then. `watch` calls it.
   */
  readonly running?: () => void;
}

/**
 * ReadinessEnd is how a readiness watch ended: the VM got ready; it timed out (`message` says what never
 * came); or the watch was aborted (a newer watch, the leave policy, the daemon stopping).
 */
export type ReadinessEnd = { kind: "ready" } | { kind: "timeout"; message: string } | { kind: "aborted" };

/** ReadinessWatcher runs one readiness watch per datapath and records its outcome. */
export class ReadinessWatcher {
  constructor(
    private readonly ctx: DaemonContext,
    readonly console: ConsoleReader = fileConsole,
    private readonly domainConsole: DomainConsoleWatch = watchDomainConsole,
  ) {}

  /**
   * attach starts the console watch of a domain that exists paused and is about to be resumed: the boot
   * marker (`boot`) or, for a restore or resume, the first output is awaited from the very first byte the
   * guest prints. Await `attached` before resuming; pass the result to `watch`, or abort its `ac`.
   */
  attach(dp: Datapath, stream: ConsoleStream, boot: boolean): EarlyConsole {
    const { clock } = this.ctx;
    const { ac, deadline, match, opened } = this.open(dp, stream, boot);
    const ended = match.then(
      () => undefined,
      () => undefined,
    );
    // The wait's timer goes as soon as the race is decided (or the watch is aborted).
    const waiting = new AbortController();
    ac.signal.addEventListener("abort", () => waiting.abort(), { once: true });
    const attached = Promise.race([opened, ended, sleep(clock, ATTACH_WAIT_MS, waiting.signal)]).then(() =>
      waiting.abort(),
    );
    return { ac, boot, deadline, match, attached };
  }

  /**
   * prepare starts the console watch of a domain about to start whose console keeps what the guest prints
   * before anyone reads it (LXC's pty): virsh is started and connected meanwhile, and the console is opened
   * once `watch` is told the domain runs, so the attach overlaps the start instead of following it. Pass the
   * result to `watch` (which opens it for a boot, and drops it otherwise), or abort its `ac`. Undefined when
   * no console marker is configured: nothing is read from the console then.
   */
  prepare(dp: Datapath, stream: ConsoleStream): EarlyConsole | undefined {
    if (!this.ctx.config().readiness.consoleMarker) return undefined;
    let running: () => void = () => undefined;
    const when = new Promise<void>((resolve) => (running = resolve));
    const { ac, deadline, match, opened } = this.open(dp, stream, true, when);
    return { ac, boot: true, deadline, match, attached: opened, running };
  }

  /**
   * open starts a console watch for `watch` to continue: the boot marker (`boot`) or the first output. Its
   * `match` settles when the line is seen, before the console is released; `opened` when virsh attached.
   */
  private open(
    dp: Datapath,
    stream: ConsoleStream,
    boot: boolean,
    when?: Promise<void>,
  ): { ac: AbortController; deadline: number; match: Promise<unknown>; opened: Promise<void> } {
    const { clock } = this.ctx;
    const r = this.ctx.config().readiness;
    const ac = dp.watchReadiness();
    const now = clock.now();
    const deadline = now + r.timeoutSeconds * 1000;
    const until = boot ? deadline : Math.min(deadline, now + RESTORED_QUIET_MS);
    let attached: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => (attached = resolve));
    const match = this.seen({
      ...stream,
      marker: boot && r.consoleMarker ? new RegExp(r.consoleMarker) : /\S/,
      timeoutMs: Math.max(1, until - now),
      signal: ac.signal,
      onAttached: () => attached(),
      ...(when ? { when } : {}),
    });
    // A watch dropped before `watch` took it (the start failed) ends aborted, and nobody else awaits it.
    match.catch(() => undefined);
    return { ac, deadline, match, opened };
  }

  /**
   * seen runs a console watch and settles as soon as the line matched (the watch itself settles once the
   * console is released, a little later), or with the watch's failure.
   */
  private seen(opts: Parameters<DomainConsoleWatch>[0]): Promise<unknown> {
    let matched: (m: unknown) => void = () => undefined;
    const hit = new Promise<unknown>((resolve) => (matched = resolve));
    return Promise.race([hit, this.domainConsole({ ...opts, onMatch: (m) => matched(m) })]);
  }

  /** offset is where new console output of a VM about to start begins (the log's current size). */
  offset(path: string | undefined): Promise<number> {
    return path ? this.console.size(path) : Promise.resolve(0);
  }

  /**
   * watch starts the datapath's readiness watch (aborting a previous one, unless it continues `early`, the
   * console watch attached before the domain ran): `ready` is recorded and emitted with the time since
   * `joinedAt` (a `clock.now()` value); a guest that shows no sign within `readiness.timeoutSeconds` gets
   * `lastError` readiness-timeout and is left running for the operator. The marker is read from `early`,
   * else from `stream` when there is no log file here or the driver is LXC, else from `consoleLog`.
   * `opts.prewarm`: a boot ahead of the switch (prewarm) records ready without the `ready` daemon event or
   * the join-to-ready metric (no switch joined), and records no timeout: the prewarm records its own end,
   * once. `opts.settled` is told once how the watch ended.
   */
  watch(
    dp: Datapath,
    vm: ResolvedVm,
    consoleLog: string | undefined,
    from: number,
    joinedAt: number,
    mode: ReadinessMode,
    stream?: ConsoleStream,
    early?: EarlyConsole,
    opts: { prewarm?: boolean; settled?: (end: ReadinessEnd) => void } = {},
  ): void {
    const { ctx } = this;
    const { clock } = ctx;
    const dpidHex = dp.dpidHex;
    // A console prepared before the start is opened now for a boot; a resume or an adopted, ready VM has
    // no boot marker to wait for: it is dropped and the mode's own watch follows.
    if (early?.running) {
      if (mode === "boot") early.running();
      else early.ac.abort();
    }
    const ac = early && !early.ac.signal.aborted ? early.ac : dp.watchReadiness();
    if (early && ac !== early.ac) early.ac.abort();
    const r = ctx.config().readiness;
    const deadline = ac === early?.ac ? early.deadline : clock.now() + r.timeoutSeconds * 1000;
    const io = { clock, console: this.console };
    let settledOnce = false;
    const settle = (end: ReadinessEnd) => {
      if (settledOnce) return;
      settledOnce = true;
      opts.settled?.(end);
    };
    ac.signal.addEventListener("abort", () => settle({ kind: "aborted" }), { once: true });
    const done = (via: string) => {
      if (ac.signal.aborted) return;
      settle({ kind: "ready" });
      ac.abort();
      const ms = clock.now() - joinedAt;
      if (mode !== "was-ready" && !opts.prewarm) ctx.metrics.readySeconds.observe(ms / 1000);
      // readyAt: when rfboot confirmed readiness for the current join (also for an adopted, was-ready VM).
      ctx.record.patch(dpidHex, { state: "ready", readyAt: clock.date() });
      const detail = opts.prewarm ? `${via} (prewarm)` : via;
      ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "ready", detail });
      ctx.log.info({ dpid: dpidHex, vm: vm.name, via: detail, ms: Math.round(ms) }, "VM ready");
      if (!opts.prewarm) ctx.emit("ready", { dpidHex, vm: vm.name, via, ms });
    };
    // Readiness that never comes is recorded (the domain runs, the guest did not show it booted); the VM is
    // left as it is for the operator (`rfboot status` shows the error), and the next join tries again. A
    // prewarm's timeout is its prewarm's failure, which the prewarm records: recorded here too, it would be two.
    const timedOut = () => {
      if (ac.signal.aborted) return;
      const message = `not ready within readiness.timeoutSeconds (${r.timeoutSeconds} s): no console marker /${r.consoleMarker ?? ""}/${r.portRegister ? " nor PortRegister" : ""}`;
      settle({ kind: "timeout", message });
      ac.abort();
      if (opts.prewarm) return;
      ctx.metrics.failures.inc({ step: "readiness", kind: "readiness-timeout" });
      ctx.record.patch(dpidHex, { lastError: { kind: "readiness-timeout", message, at: clock.date() } });
      ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "error", detail: `readiness: ${message}` });
      ctx.log.warn({ dpid: dpidHex, vm: vm.name }, message);
    };
    /** onStream handles the end of a console stream watch for the boot marker. */
    const onStream = (watching: Promise<unknown>) =>
      watching.then(
        () => done("console"),
        (e: unknown) => {
          if (ac.signal.aborted) return;
          if (e instanceof ConsoleError && e.kind === "timeout") {
            timedOut();
            return;
          }
          // The console could not be read (virsh exited, the domain stopped): readiness stays unobserved
          // by the console; PortRegister, when configured, may still confirm it.
          ctx.log.warn(
            { dpid: dpidHex, vm: vm.name, err: errorMessage(e) },
            "console not readable for readiness",
          );
          if (!r.portRegister) timedOut();
        },
      );
    if (mode === "was-ready") {
      done("adopted (ready since its last start)");
      return;
    }
    if (mode === "restored") {
      // A guest restored from managedsave (or resumed) was ready when it stopped: it does not boot again, so
      // neither its boot marker nor rfclient's PortRegister comes back. Its first new console output proves
      // it runs; a guest that prints nothing is taken as ready after RESTORED_QUIET_MS.
      if (ac === early?.ac) {
        void early.match.then(
          () => done("console (restored)"),
          () => done("restored"),
        );
        return;
      }
      const quietUntil = Math.min(deadline, clock.now() + RESTORED_QUIET_MS);
      const seen = consoleLog
        ? watchConsoleMarker(consoleLog, /\S/, from, quietUntil, ac.signal, 50, io)
        : sleep(clock, quietUntil - clock.now(), ac.signal).then(() => false);
      void seen.then((hit) => done(hit ? "console (restored)" : "restored"));
      return;
    }
    // With neither a console marker nor PortRegister configured, nothing is watched: the record stays
    // `running` (the domain runs; the guest's readiness is not observed, and a waiter takes it as ready).
    if (!r.consoleMarker && !r.portRegister) settle({ kind: "ready" });
    if (r.consoleMarker && ac === early?.ac) {
      // Attached before the guest ran: the stream holds everything it printed since.
      void onStream(early.match);
    } else if (r.consoleMarker && stream && (!consoleLog || vm.hypervisor === "lxc")) {
      // No log file here (an LXC domain, a remote host): the console itself, through libvirt. LXC's pty keeps
      // what the guest printed before anyone read it; QEMU's does not (it was attached early when it could).
      // The watch releases the console once the marker is seen.
      void onStream(
        this.seen({
          ...stream,
          marker: new RegExp(r.consoleMarker),
          timeoutMs: Math.max(1, deadline - clock.now()),
          signal: ac.signal,
        }),
      );
    } else if (r.consoleMarker && consoleLog) {
      void watchConsoleMarker(
        consoleLog,
        new RegExp(r.consoleMarker),
        from,
        deadline,
        ac.signal,
        50,
        io,
      ).then((hit) => {
        if (hit) done("console");
        else if (!ac.signal.aborted && clock.now() >= deadline) timedOut();
      });
    }
    if (r.portRegister) {
      const w = ctx.store.watchPortRegister(vm.vmId.toString(10), new Date(clock.date().getTime() - 1000), {
        expectPorts: vm.ports.map((p) => String(p.vmPort)),
        timeoutMs: Math.max(1, deadline - clock.now()),
      });
      ac.signal.addEventListener("abort", () => w.stop());
      w.ready.then(
        () => done("portregister"),
        () => {
          // The watch rejects on its own timeout (readiness timed out) or when stopped (aborted: not an error).
          if (clock.now() >= deadline - 100) timedOut();
        },
      );
    }
  }
}
