/** Small helpers shared by the reliability scenarios: waiting, free ports, commands, result bookkeeping. */

export { freePort, sh, shOk, sleep, until } from "../../helpers/real.js";

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
    if (a === e) return this.ok(what, true, `= ${cut(a)}`);
    if (Array.isArray(actual) && Array.isArray(expected)) {
      // Lists: say which elements are missing and which are extra, not just where the texts diverge.
      const json = (x: unknown) =>
        JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
      const left = actual.map(json);
      const missing: string[] = [];
      for (const x of expected.map(json)) {
        const i = left.indexOf(x);
        if (i >= 0) left.splice(i, 1);
        else missing.push(x);
      }
      const show = (xs: string[]) =>
        xs.length ? xs.slice(0, 8).join(" ") + (xs.length > 8 ? " ..." : "") : "none";
      return this.ok(
        what,
        false,
        `got ${actual.length}, expected ${expected.length}; missing ${show(missing)}; extra ${show(left)}`,
      );
    }
    return this.ok(what, false, `got ${cut(a)}, expected ${cut(e)}`);
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
