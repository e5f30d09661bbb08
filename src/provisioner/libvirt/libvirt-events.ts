/**
 * Libvirt domain events for one host: a long-lived `virsh event --loop --all --timestamp` child parsed line by
 * line, restarted with backoff when it dies, plus a polling fallback (`list --all` every N s) that reports state
 * differences, so records stay current even when the event stream is down or misses something.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { EventEmitter } from "node:events";
import { silentLogger, type Logger } from "../../common/log.js";
import type { HostRef } from "./lifecycle.js";
import type { DomainState } from "./parse.js";
import type { VmState } from "../store/index.js";
import { processes, type ProcessSeam } from "./process.js";

/** LIFECYCLE_EVENTS are the words virsh prints for lifecycle events (virshDomainEventToString). */
export const LIFECYCLE_EVENTS = [
  "Defined",
  "Undefined",
  "Started",
  "Suspended",
  "Resumed",
  "Stopped",
  "Shutdown",
  "PMSuspended",
  "Crashed",
] as const;

/** LifecycleEventName is one of LIFECYCLE_EVENTS. */
export type LifecycleEventName = (typeof LIFECYCLE_EVENTS)[number];

/** DomainEvent is one parsed event line (or a difference found by polling). */
export type DomainEvent =
  | {
      type: "lifecycle";
      host: string;
      domain: string;
      event: LifecycleEventName;
      /** detail is the reason word(s), e.g. Booted, Restored, Saved, Destroyed. */
      detail: string;
      at: Date;
      source: "event" | "poll";
    }
  | { type: "other"; host: string; domain: string; kind: string; detail: string; at: Date; source: "event" }
  | {
      type: "state";
      host: string;
      domain: string;
      state: DomainState | "undefined";
      previous: DomainState | "undefined";
      at: Date;
      source: "poll";
    };

const LINE =
  /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(\d\d): event '([^']+)' for domain '(.*?)'(?:: (.*))?$/;
const LINE_NO_TS = /^event '([^']+)' for domain '(.*?)'(?:: (.*))?$/;

/**
 * recordStateOf maps a domain event to the VM record state it implies: stopped (saved: suspended),
 * undefined (missing), crashed (failed); undefined for events that do not change the record.
 */
export function recordStateOf(e: DomainEvent): VmState | undefined {
  if (e.type === "other") return undefined;
  if (e.type === "lifecycle") {
    if (e.event === "Stopped") return e.detail.includes("Saved") ? "suspended" : "stopped";
    if (e.event === "Undefined") return "missing";
    if (e.event === "Crashed") return "failed";
    return undefined;
  }
  if (e.state === "undefined") return "missing";
  if (e.state === "shutoff") return "stopped";
  return undefined;
}

/**
 * parseEventLine parses one line of `virsh event --loop --all [--timestamp]`, e.g.
 * `2026-11-22 00:47:12.196+0000: event 'lifecycle' for domain 'vm1': Started Booted`.
 * Returns undefined for lines that are not events (counters, blank lines, garbage).
 */
export function parseEventLine(
  line: string,
  host: string,
  now: () => Date = () => new Date(),
): DomainEvent | undefined {
  const s = line.replace(/\r$/, "");
  let kind: string;
  let domain: string;
  let detail: string;
  let at: Date;
  const m = LINE.exec(s);
  if (m) {
    at = new Date(`${m[1]}T${m[2]}${m[3]}:${m[4]}`);
    if (Number.isNaN(at.getTime())) at = now();
    kind = m[5] as string;
    domain = m[6] as string;
    detail = m[7] ?? "";
  } else {
    const n = LINE_NO_TS.exec(s);
    if (!n) return undefined;
    at = now();
    kind = n[1] as string;
    domain = n[2] as string;
    detail = n[3] ?? "";
  }
  if (kind === "lifecycle") {
    const sp = detail.indexOf(" ");
    const word = sp < 0 ? detail : detail.slice(0, sp);
    if ((LIFECYCLE_EVENTS as readonly string[]).includes(word)) {
      return {
        type: "lifecycle",
        host,
        domain,
        event: word as LifecycleEventName,
        detail: sp < 0 ? "" : detail.slice(sp + 1),
        at,
        source: "event",
      };
    }
  }
  return { type: "other", host, domain, kind, detail, at, source: "event" };
}

/** PolledDomain is what the polling fallback needs per domain. */
export interface PolledDomain {
  name: string;
  state: DomainState;
}

/** LibvirtEventsOptions configure the watcher of one host. */
export interface LibvirtEventsOptions {
  host: HostRef;
  /** poll lists the host's domains (e.g. `() => manager.list()`); without it there is no polling fallback. */
  poll?: () => Promise<PolledDomain[]>;
  /** pollMs between polls (default 10 s). */
  pollMs?: number;
  /** restart backoff bounds for the event stream (default 250 ms .. 10 s). */
  restartMinMs?: number;
  restartMaxMs?: number;
  virsh?: string;
  log?: Logger;
  /** processes is the process seam of the event stream (default: real children). */
  processes?: ProcessSeam;
}

/**
 * LibvirtEvents emits `"event"` with a DomainEvent for every parsed line and polling difference, `"stream"`
 * with `{up: boolean}` when the event child starts or dies, and `"poll-error"` with the error of a failed poll.
 */
export class LibvirtEvents extends EventEmitter {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buf = "";
  private stopped = true;
  private backoff: number;
  private restartTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private known: Map<string, DomainState> | undefined;
  private readonly log: Logger;
  /** restarts counts how many times the event stream was restarted. */
  restarts = 0;

  constructor(private readonly opts: LibvirtEventsOptions) {
    super();
    this.backoff = opts.restartMinMs ?? 250;
    this.log = opts.log ?? silentLogger;
  }

  /** start launches the event stream and the polling loop (an immediate first poll seeds the state map). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawnStream();
    if (this.opts.poll) {
      void this.pollOnce();
      this.pollTimer = setInterval(() => void this.pollOnce(), this.opts.pollMs ?? 10_000);
      this.pollTimer.unref?.();
    }
  }

  /** streaming tells whether the `virsh event` child is currently running. */
  get streaming(): boolean {
    return this.child !== undefined;
  }

  private spawnStream(): void {
    if (this.stopped) return;
    const child = (this.opts.processes ?? processes).spawn({
      file: this.opts.virsh ?? "virsh",
      args: ["-c", this.opts.host.uri, "event", "--loop", "--all", "--timestamp"],
    });
    this.child = child;
    let stderr = "";
    const started = Date.now();
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d: string) => this.onData(d));
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-2000);
    });
    child.on("error", () => undefined);
    child.on("spawn", () => this.emit("stream", { up: true }));
    child.on("close", (code) => {
      if (this.child === child) this.child = undefined;
      this.buf = "";
      this.emit("stream", { up: false, code, stderr });
      if (this.stopped) return;
      // A stream that lived a while was healthy: restart fast; one that dies at once backs off.
      if (Date.now() - started > 5_000) this.backoff = this.opts.restartMinMs ?? 250;
      this.log.warn(
        { host: this.opts.host.name, code, stderr: stderr.trim(), retryMs: this.backoff },
        "virsh event stream ended",
      );
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.spawnStream();
      }, this.backoff);
      this.restartTimer.unref?.();
      this.backoff = Math.min(this.backoff * 2, this.opts.restartMaxMs ?? 10_000);
      // Events may have been missed while the stream was down: poll now.
      if (this.opts.poll) void this.pollOnce();
    });
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      const ev = parseEventLine(line, this.opts.host.name);
      if (ev) this.emit("event", ev);
    }
    if (this.buf.length > 65_536) this.buf = ""; // garbage without newlines: drop rather than grow forever
  }

  /** pollOnce lists the host and emits `state` events for differences since the previous poll. */
  pollOnce(): Promise<void> {
    if (!this.opts.poll) return Promise.resolve();
    this.polling ??= (async () => {
      try {
        const doms = await this.opts.poll!();
        const now = new Date();
        const next = new Map(doms.map((d) => [d.name, d.state]));
        const prev = this.known;
        this.known = next;
        if (!prev || this.stopped) return;
        for (const [name, state] of next) {
          const before = prev.get(name) ?? "undefined";
          if (before !== state) {
            this.emit("event", {
              type: "state",
              host: this.opts.host.name,
              domain: name,
              state,
              previous: before,
              at: now,
              source: "poll",
            });
          }
        }
        for (const [name, state] of prev) {
          if (!next.has(name)) {
            this.emit("event", {
              type: "state",
              host: this.opts.host.name,
              domain: name,
              state: "undefined",
              previous: state,
              at: now,
              source: "poll",
            });
          }
        }
      } catch (err) {
        this.emit("poll-error", err);
      } finally {
        this.polling = undefined;
      }
    })();
    return this.polling;
  }

  /** stop ends the stream and polling and waits for the child to exit. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    const c = this.child;
    this.child = undefined;
    if (c && c.exitCode === null) {
      await new Promise<void>((res) => {
        c.once("close", () => res());
        c.kill("SIGTERM");
        setTimeout(() => {
          c.kill("SIGKILL");
          res();
        }, 2000).unref();
      });
    }
    await this.polling;
  }
}
