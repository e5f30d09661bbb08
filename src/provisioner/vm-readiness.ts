/**
 * VM readiness: after a VM runs, watch for the sign that its guest booted (a console marker, rfclient's
 * PortRegister on RouteFlow's IPC channel, or nothing), then record `ready`; record a timeout when the sign
 * never comes. Time comes from the DaemonClock and console logs are read through a ConsoleReader, so the
 * rules are tested without files or sleeping.
 */
import { open } from "node:fs/promises";
import { ConsoleError, errorMessage } from "../common/errors.js";
import { sleep, systemClock, type DaemonClock } from "./clock.js";
import type { ResolvedVm } from "./config/index.js";
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
    try {
      const fh = await open(path, "r");
      try {
        return (await fh.stat()).size;
      } finally {
        await fh.close();
      }
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
 * DomainConsoleWatch reads a running domain's console through libvirt until a line matches (resolves) or the
 * watch times out or is aborted (rejects with a ConsoleError). It serves drivers whose consoles have no log
 * file (LXC: pty consoles only); the default is watchDomainConsole.
 */
export type DomainConsoleWatch = (
  opts: Pick<WatchConsoleOptions, "uri" | "domain" | "marker" | "timeoutMs" | "signal">,
) => Promise<unknown>;

/** ConsoleStream names the domain whose console is read through libvirt instead of a log file. */
export interface ConsoleStream {
  uri: string;
  domain: string;
}

/** ReadinessWatcher runs one readiness watch per datapath and records its outcome. */
export class ReadinessWatcher {
  constructor(
    private readonly ctx: DaemonContext,
    readonly console: ConsoleReader = fileConsole,
    private readonly domainConsole: DomainConsoleWatch = watchDomainConsole,
  ) {}

  /** offset is where new console output of a VM about to start begins (the log's current size). */
  offset(path: string | undefined): Promise<number> {
    return path ? this.console.size(path) : Promise.resolve(0);
  }

  /**
   * watch starts the datapath's readiness watch (aborting a previous one): `ready` is recorded and emitted
   * with the time since `joinedAt` (a `clock.now()` value); a guest that shows no sign within
   * `readiness.timeoutSeconds` gets `lastError` readiness-timeout and is left running for the operator.
   */
  watch(
    dp: Datapath,
    vm: ResolvedVm,
    consoleLog: string | undefined,
    from: number,
    joinedAt: number,
    mode: ReadinessMode,
    stream?: ConsoleStream,
  ): void {
    const { ctx } = this;
    const { clock } = ctx;
    const dpidHex = dp.dpidHex;
    const ac = dp.watchReadiness();
    const r = ctx.config().readiness;
    const deadline = clock.now() + r.timeoutSeconds * 1000;
    const io = { clock, console: this.console };
    const done = (via: string) => {
      if (ac.signal.aborted) return;
      ac.abort();
      const ms = clock.now() - joinedAt;
      if (mode !== "was-ready") ctx.metrics.readySeconds.observe(ms / 1000);
      // readyAt: when rfboot confirmed readiness for the current join (also for an adopted, was-ready VM).
      ctx.record.patch(dpidHex, { state: "ready", readyAt: clock.date() });
      ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "ready", detail: via });
      ctx.log.info({ dpid: dpidHex, vm: vm.name, via, ms: Math.round(ms) }, "VM ready");
      ctx.emit("ready", { dpidHex, vm: vm.name, via, ms });
    };
    // Readiness that never comes is recorded (the domain runs, the guest did not show it booted); the VM is
    // left as it is for the operator (`rfboot status` shows the error), and the next join tries again.
    const timedOut = () => {
      if (ac.signal.aborted) return;
      ac.abort();
      const message = `not ready within readiness.timeoutSeconds (${r.timeoutSeconds} s): no console marker /${r.consoleMarker ?? ""}/${r.portRegister ? " nor PortRegister" : ""}`;
      ctx.metrics.failures.inc({ step: "readiness", kind: "readiness-timeout" });
      ctx.record.patch(dpidHex, { lastError: { kind: "readiness-timeout", message, at: clock.date() } });
      ctx.record.event({ dpid: dpidHex, vm: vm.name, kind: "error", detail: `readiness: ${message}` });
      ctx.log.warn({ dpid: dpidHex, vm: vm.name }, message);
    };
    if (mode === "was-ready") {
      done("adopted (ready since its last start)");
      return;
    }
    if (mode === "restored") {
      // A guest restored from managedsave (or resumed) was ready when it stopped: it does not boot again, so
      // neither its boot marker nor rfclient's PortRegister comes back. Its first new console output proves
      // it runs; a guest that prints nothing is taken as ready after RESTORED_QUIET_MS.
      const quietUntil = Math.min(deadline, clock.now() + RESTORED_QUIET_MS);
      const seen = consoleLog
        ? watchConsoleMarker(consoleLog, /\S/, from, quietUntil, ac.signal, 50, io)
        : sleep(clock, quietUntil - clock.now(), ac.signal).then(() => false);
      void seen.then((hit) => done(hit ? "console (restored)" : "restored"));
      return;
    }
    // With neither a console marker nor PortRegister configured, nothing is watched: the record stays
    // `running` (the domain runs; the guest's readiness is not observed).
    if (r.consoleMarker && consoleLog) {
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
    if (r.consoleMarker && !consoleLog && stream) {
      // No log file (an LXC domain): the console itself, through libvirt, which keeps what the guest printed
      // before anyone read it. The watch releases the console once the marker is seen.
      this.domainConsole({
        ...stream,
        marker: new RegExp(r.consoleMarker),
        timeoutMs: Math.max(1, deadline - clock.now()),
        signal: ac.signal,
      }).then(
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
