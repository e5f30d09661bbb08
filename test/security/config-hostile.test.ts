/**
 * Hostile config input: every string field of the config schema is found by walking the schema
 * itself (zod's JSON Schema export), then given injection attempts (XML metacharacters and `]]>`, shell
 * metacharacters, `..` path traversal, NUL, newlines, a MongoDB operator object where a scalar belongs,
 * a 100,000-character string, a number). Each must be refused with a ConfigError naming that field. Free
 * text that never reaches a shell, a path or XML unescaped keeps its documented exceptions (the console
 * marker is a regular expression; a kernel command line may mention `../x`). Also: a file over the size
 * limit, and `rfboot run --config BAD` exits 2 before anything listens.
 */
import { execa } from "execa";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/common/errors.js";
import { MAX_CONFIG_BYTES, parseConfig } from "../../src/provisioner/config/index.js";
import { configSchema } from "../../src/provisioner/config/schema.js";
import { REPO } from "../helpers/env.js";

type Json = Record<string, unknown>;

/** stringPaths lists the schema's string-typed keys as paths (`*` = any record key, `[]` = array item). */
function stringPaths(): string[][] {
  const js = z.toJSONSchema(configSchema, { unrepresentable: "any", io: "input" }) as Json;
  const defs = (js.$defs ?? {}) as Record<string, Json>;
  const out = new Map<string, string[]>();
  const walk = (s: Json | undefined, p: string[], depth: number): void => {
    if (!s || typeof s !== "object" || depth > 30) return;
    if (typeof s.$ref === "string") return walk(defs[s.$ref.split("/").pop()!], p, depth + 1);
    const t = s.type;
    if (t === "string" || (Array.isArray(t) && t.includes("string"))) out.set(p.join("."), p);
    for (const k of ["anyOf", "oneOf", "allOf"])
      for (const x of (s[k] as Json[] | undefined) ?? []) walk(x, p, depth + 1);
    if (s.properties)
      for (const [k, v] of Object.entries(s.properties as Json)) walk(v as Json, [...p, k], depth + 1);
    if (s.additionalProperties && typeof s.additionalProperties === "object") {
      walk(s.additionalProperties as Json, [...p, "*"], depth + 1);
    }
    if (s.items && typeof s.items === "object") walk(s.items as Json, [...p, "[]"], depth + 1);
  };
  walk(js, [], 0);
  return [...out.values()];
}

/** The example config (every key) with its commented-out optional sections switched on. */
function baseConfig(): Json {
  const base = parse(readFileSync(join(REPO, "config/example.yaml"), "utf8")) as Json;
  (base.openflow as Json).tls = {
    cert: "/etc/rfboot/cert.pem",
    key: "/etc/rfboot/key.pem",
    ca: "/etc/rfboot/ca.pem",
  };
  return base;
}

/** setAt writes `value` at a schema path, choosing existing record keys / array items, creating objects. */
function setAt(root: Json, path: string[], value: unknown): string[] {
  const concrete: string[] = [];
  let node: Record<string, unknown> | unknown[] = root;
  path.forEach((seg, i) => {
    const last = i === path.length - 1;
    let key: string | number = seg;
    if (seg === "*") key = Object.keys(node as Json)[0] ?? "x";
    if (seg === "[]") key = 0;
    concrete.push(String(key));
    const holder = node as Record<string | number, unknown>;
    if (last) {
      holder[key] = value;
      return;
    }
    const next = holder[key];
    if (next === null || typeof next !== "object") holder[key] = path[i + 1] === "[]" ? [] : {};
    node = holder[key] as Json;
  });
  return concrete;
}

const PAYLOADS: [string, unknown][] = [
  ["xml", "<domain type='kvm'>&x;</domain>"],
  ["cdata-end", "]]>"],
  ["shell", ";$(rm -rf /)"],
  ["backquote", "`id`"],
  ["traversal", "../../etc/passwd"],
  ["abs-traversal", "/var/lib/rfboot/../../etc/shadow"],
  ["nul", "a\u0000b"],
  ["newline", "a\nb"],
  ["long", "x".repeat(100_000)],
  ["mongo-operator", { $gt: "" }],
  ["number", 12345],
];

/** Documented exceptions: values these fields accept on purpose (see the module comment). */
function accepted(path: string, payload: string): boolean {
  if (path === "readiness.consoleMarker") return payload !== "long"; // a regex, only ever matched
  if (/\.boot\.(cmdline|args)(\.\[\])?$/.test(path))
    return payload === "traversal" || payload === "abs-traversal";
  if (/\.vmId$/.test(path)) return payload === "number"; // a vm_id may be written as a number
  return false;
}

const paths = stringPaths();
const base = baseConfig();

describe("config: hostile values in every string field", () => {
  it("the schema walk finds the string fields (and the base config is valid)", () => {
    expect(paths.length).toBeGreaterThan(80);
    expect(() => parseConfig(JSON.stringify(base), { format: "json" })).not.toThrow();
  });

  it.each(paths.map((p) => [p.join(".")] as const))("%s", (name) => {
    const path = name.split(".");
    const problems: string[] = [];
    for (const [label, value] of PAYLOADS) {
      const cfg = structuredClone(base);
      const concrete = setAt(cfg, path, value);
      const leaf =
        path[path.length - 1] === "[]" ? concrete[concrete.length - 2]! : concrete[concrete.length - 1]!;
      let err: unknown;
      try {
        parseConfig(JSON.stringify(cfg), { format: "json" });
      } catch (e) {
        err = e;
      }
      if (err === undefined) {
        if (!accepted(name, label)) problems.push(`${label}: accepted`);
        continue;
      }
      if (!(err instanceof ConfigError)) {
        problems.push(`${label}: ${(err as Error).name} instead of ConfigError: ${(err as Error).message}`);
      } else if (!err.problems.some((p) => p.path.includes(leaf) || p.message.includes(leaf))) {
        problems.push(
          `${label}: ConfigError does not name ${leaf}: ${err.path}: ${err.message.slice(0, 120)}`,
        );
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("config: size and shape", () => {
  it("a file over the size limit is refused before parsing", () => {
    const huge = `# ${"x".repeat(MAX_CONFIG_BYTES)}\nversion: 1\n`;
    expect(() => parseConfig(huge, { format: "yaml" })).toThrow(ConfigError);
  });

  it("a YAML alias bomb is refused, not expanded", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 12; i++)
      lines.push(
        `${"b".repeat(i)}: &${"b".repeat(i)} [${Array(10)
          .fill(i === 1 ? "*a" : `*${"b".repeat(i - 1)}`)
          .join(", ")}]`,
      );
    const t0 = Date.now();
    expect(() => parseConfig(lines.join("\n"), { format: "yaml" })).toThrow(ConfigError);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("wrong types name the field", () => {
    const cfg = structuredClone(base);
    (cfg.openflow as Json).listen = { host: "127.0.0.1", port: "6653; rm -rf /" };
    expect(() => parseConfig(JSON.stringify(cfg), { format: "json" })).toThrow(/openflow\.listen\.port/);
    const cfg2 = structuredClone(base);
    cfg2.hosts = { $where: "1" };
    expect(() => parseConfig(JSON.stringify(cfg2), { format: "json" })).toThrow(/hosts/);
  });
});

describe("rfboot run --config BAD", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbt-sec-cfg-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 2 naming the field, and never listens", { timeout: 120_000 }, async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const a = s.address();
        s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
      });
    });
    const cfg = structuredClone(base);
    (cfg.openflow as Json).listen = { host: "127.0.0.1", port };
    (cfg.mongo as Json).database = { $gt: "" };
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify(cfg));
    let listened = false;
    const probe = setInterval(() => {
      const s = createServer();
      s.once("error", () => (listened = true));
      s.listen(port, "127.0.0.1", () => s.close());
    }, 20);
    const r = await execa(join(REPO, "bin/rfboot"), ["run", "--config", file], {
      reject: false,
      timeout: 100_000,
    });
    clearInterval(probe);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/mongo\.database/);
    expect(listened).toBe(false);
  });
});
