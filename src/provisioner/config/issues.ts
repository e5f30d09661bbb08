/**
 * Turning schema issues into ConfigErrors that name the key path (`hosts[1].maxVms`,
 * `datapaths."0x5".vmId`), the bad value and, for YAML files, the line.
 */
import type { z } from "zod";
import { ConfigError } from "../../common/errors.js";
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
    case "int":
      return "a number";
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
    case "unrecognized_keys": {
      const key = issue.keys[0] ?? "";
      const more = issue.keys.length > 1 ? ` (also: ${issue.keys.slice(1).join(", ")})` : "";
      return {
        path: [...path, key],
        message: `unknown key${more}; check the spelling against config/README.md`,
      };
    }
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
 * issuesToConfigError builds the ConfigError for a failed schema parse: the first issue (path, message,
 * value, line), plus how many more there are. `prefix` is prepended to issue paths (for sub-parses).
 */
export function issuesToConfigError(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  opts: { prefix?: readonly PathSegment[]; locate?: Locate; source?: string; note?: string } = {},
): ConfigError {
  const first = issues[0]!;
  const rel = first.path.filter((p): p is string | number => typeof p !== "symbol");
  const value = valueAt(input, rel);
  const { path, message } = issueMessage(first, value);
  const full = [...(opts.prefix ?? []), ...path];
  return configError(full, message + (opts.note ?? ""), value, {
    ...opts,
    more: issues.length - 1,
  });
}

/** configError builds a ConfigError for `path` with the location suffix and the count of further problems. */
export function configError(
  path: readonly PathSegment[],
  message: string,
  value: unknown,
  opts: { locate?: Locate; source?: string; more?: number } = {},
): ConfigError {
  const where = opts.locate?.(path) ?? opts.source;
  const suffix =
    (where ? ` (${where})` : "") +
    (opts.more ? ` [and ${opts.more} more problem${opts.more > 1 ? "s" : ""}]` : "");
  return new ConfigError(
    message + suffix,
    formatPath(path),
    typeof value === "string" ? redactUri(value) : value,
  );
}
