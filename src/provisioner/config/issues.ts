/**
 * Turning schema issues into ConfigErrors that name the key path (`hosts[1].maxVms`,
 * `datapaths."0x5".vmId`), the bad value and, for YAML files, the line.
 */
import type { z } from "zod";
import { ConfigError, type ConfigProblem } from "../../common/errors.js";
import { redactUri } from "../../common/log.js";

/** PathSegment is one step of a key path: an object key or an array index. */
export type PathSegment = string | number;

const IDENT_SEG_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * formatPath renders a key path: identifiers joined by `.`, indices as `[n]`, and any other key (every
 * dpid key, since those look like numbers or contain `:`) as a JSON string: `datapaths."0x5".vmId`.
 */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  path.forEach((seg, i) => {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (IDENT_SEG_RE.test(seg) && path[i - 1] !== "datapaths") out += (i === 0 ? "" : ".") + seg;
    else out += (i === 0 ? "" : ".") + JSON.stringify(seg);
  });
  return out;
}

/** valueAt follows `path` into a parsed (not yet validated) document. */
export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(v, seg)) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** describeValue renders a value for a message, short and with secrets hidden. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (typeof v === "bigint") return `${v}`;
  if (typeof v === "string") {
    const s = JSON.stringify(redactUri(v));
    return s.length > 80 ? `${s.slice(0, 77)}..."` : s;
  }
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.some((k) => k.startsWith("$")))
      return `an object with ${keys.join(", ")} (a MongoDB operator is not a value)`;
    return `an object {${keys.slice(0, 5).join(", ")}${keys.length > 5 ? ", ..." : ""}}`;
  }
  return String(v);
}

function typeWord(expected: string): string {
  switch (expected) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    case "object":
    case "record":
      return "a mapping (key: value)";
    case "array":
      return "a list";
    default:
      return expected;
  }
}

/** Locate gives a human location (`config.yaml line 12`) for a key path, when the source has lines. */
export type Locate = (path: readonly PathSegment[]) => string | undefined;

/** issueMessage turns one zod issue into the sentence after the path. */
function issueMessage(issue: z.core.$ZodIssue, value: unknown): { path: PathSegment[]; message: string } {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const got = `, got ${describeValue(value)}`;
  switch (issue.code) {
    case "invalid_type":
      if (value === undefined) return { path, message: `is required (${typeWord(issue.expected)})` };
      return { path, message: `must be ${typeWord(issue.expected)}${got}` };
    case "unrecognized_keys":
      // issuesToConfigError splits an issue with several keys into one problem per key.
      return {
        path: [...path, issue.keys[0] ?? ""],
        message: "unknown key; check the spelling against config/README.md",
      };
    case "invalid_value":
      return { path, message: `must be one of ${issue.values.map((v) => String(v)).join(", ")}${got}` };
    case "invalid_union": {
      const i = issue as { note?: string; options?: unknown[] };
      if (i.options) {
        return { path, message: `must be one of ${i.options.map(String).join(", ")}${got}` };
      }
      return { path, message: `has the wrong type${got}` };
    }
    case "too_small": {
      const what = issue.origin === "array" ? " entries" : issue.origin === "string" ? " characters" : "";
      // `positive()` is an exclusive bound: "at least 0, got 0" would contradict itself.
      const bound = issue.inclusive === false ? "greater than" : "at least";
      return { path, message: `must be ${bound} ${issue.minimum}${what}${got}` };
    }
    case "too_big": {
      const what = issue.origin === "array" ? " entries" : issue.origin === "string" ? " characters" : "";
      const bound = issue.inclusive === false ? "less than" : "at most";
      return { path, message: `must be ${bound} ${issue.maximum}${what}${got}` };
    }
    case "custom":
      return { path, message: `${issue.message}${got}` };
    default:
      return { path, message: `${issue.message}${got}` };
  }
}

/**
 * issuesToConfigError builds the ConfigError for a failed schema parse: one problem per issue (path,
 * message, value, line), the first as the main message. `prefix` is prepended to issue paths (for sub-parses).
 */
export function issuesToConfigError(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  opts: { prefix?: readonly PathSegment[]; locate?: Locate; source?: string; note?: string } = {},
): ConfigError {
  const split = issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" && issue.keys.length > 1
      ? issue.keys.map((k) => ({ ...issue, keys: [k] }))
      : [issue],
  );
  return combineConfigErrors(
    split.map((issue) => {
      const rel = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      const value = valueAt(input, rel);
      const { path, message } = issueMessage(issue, value);
      return configError([...(opts.prefix ?? []), ...path], message + (opts.note ?? ""), value, opts);
    }),
  );
}

/** configError builds a ConfigError for `path` with the location suffix (`(c.yaml line 4)`) when known. */
export function configError(
  path: readonly PathSegment[],
  message: string,
  value: unknown,
  opts: { locate?: Locate; source?: string } = {},
): ConfigError {
  const where = opts.locate?.(path) ?? opts.source;
  return new ConfigError(
    message + (where ? ` (${where})` : ""),
    formatPath(path),
    typeof value === "string" ? redactUri(value) : value,
  );
}

/**
 * combineConfigErrors makes one ConfigError of several (each may already hold several problems): every
 * problem listed, the first as the main message. Identical problems (same path and message) are listed once.
 */
export function combineConfigErrors(errors: readonly ConfigError[]): ConfigError {
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const e of errors) {
    for (const p of e.problems) {
      const k = `${p.path}\u0000${p.message}`;
      if (seen.has(k)) continue;
      seen.add(k);
      problems.push(p);
    }
  }
  const first = problems[0];
  if (!first) throw new RangeError("combineConfigErrors needs at least one error");
  if (errors.length === 1 && errors[0]!.problems.length === problems.length) return errors[0]!;
  return new ConfigError(first.message, first.path, first.value, { problems });
}

const PATH_TOKEN_RE = /^(?:\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\.?("(?:[^"\\]|\\.)*"))/;

/** parsePath reads a key path written by formatPath back into segments; undefined when it is not one. */
export function parsePath(text: string): PathSegment[] | undefined {
  const out: PathSegment[] = [];
  let rest = text;
  while (rest !== "") {
    const m = PATH_TOKEN_RE.exec(rest);
    if (!m) return undefined;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
    rest = rest.slice(m[0].length);
  }
  return out;
}

/**
 * withLocation rewrites the problems of a ConfigError thrown by code that knows key paths but not the file:
 * `blame` may move a problem to the key the user wrote (a setting that came from a profile or from
 * `defaults`), then each problem gets the line of that key.
 */
export function withLocation(
  err: ConfigError,
  locate: Locate | undefined,
  blame: (path: PathSegment[]) => PathSegment[] = (p) => p,
): ConfigError {
  return combineConfigErrors(
    err.problems.map((p) => {
      const segs = parsePath(p.path);
      if (segs === undefined) return new ConfigError(p.message, p.path, p.value);
      return configError(blame(segs), p.message, p.value, locate ? { locate } : {});
    }),
  );
}
