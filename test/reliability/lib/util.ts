/** Small helpers shared by the reliability scenarios: waiting, free ports, commands, result bookkeeping. */
import { createServer } from "node:net";
import { execa } from "execa";

/** sleep resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** until polls `fn` every `everyMs` until it returns something other than undefined/false, or times out. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** sh runs a command (argument array, C locale) and returns its stdout; throws on failure. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  return (await execa(cmd, args, { env: { LC_ALL: "C" } })).stdout;
}

/** shOk runs a command and ignores its failure (cleanup). */
export async function shOk(cmd: string, args: string[]): Promise<void> {
  await execa(cmd, args, { env: { LC_ALL: "C" }, reject: false });
}

/** Check is one verified property of a scenario: what was checked, whether it held, what was seen. */
export interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

/** ScenarioResult is what a scenario reports (tests assert every check; the bench tabulates it). */
export interface ScenarioResult {
  id: string;
  title: string;
  injected: string;
  checks: Check[];
  /** figures are the key numbers (times in ms, counts). */
  figures: Record<string, number | string>;
  durationMs: number;
}

/** Checks collects checks: `eq` and `ok` record a comparison with what was observed. */
export class Checks {
  readonly list: Check[] = [];

  ok(what: string, ok: boolean, detail = ""): boolean {
    this.list.push({ what, ok, detail });
    return ok;
  }

  eq(what: string, actual: unknown, expected: unknown): boolean {
    const a = JSON.stringify(actual, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    const e = JSON.stringify(expected, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    const cut = (x: string) => (x.length > 160 ? `${x.slice(0, 150)}... (${x.length} chars)` : x);
    return this.ok(what, a === e, a === e ? `= ${cut(a)}` : `got ${cut(a)}, expected ${cut(e)}`);
  }

  /** failed lists the checks that did not hold (a test expects this to be empty). */
  failed(): Check[] {
    return this.list.filter((c) => !c.ok);
  }
}

/** failedChecks formats a result's failed checks for an assertion message. */
export function failedChecks(r: ScenarioResult): string[] {
  return r.checks.filter((c) => !c.ok).map((c) => `${c.what}: ${c.detail}`);
}
