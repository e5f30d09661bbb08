/**
 * Input validation for everything the store writes. Values reach MongoDB only after they were checked here,
 * so config text such as `{"$gt": ""}` can never become a query operator (hostile input).
 */
import { z } from "zod";
import { ConfigError } from "../../common/errors.js";
import { RFCONFIG_FIELDS, VM_STATES, type RecordPatch, type RfconfigRow, type StoreEvent } from "./types.js";

/**
 * DECIMAL matches a canonical decimal string: digits only, no sign, no leading zero. RouteFlow writes and
 * queries `str(int(v))`, so `"05"` would be stored but never matched by rfserver.
 */
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Upper bounds per rfconfig field: vm_id is a 48-bit MAC, dp_id a 64-bit dpid, ports 32-bit (OF 1.3 §7.2.1). */
const RFCONFIG_MAX: Record<(typeof RFCONFIG_FIELDS)[number], bigint> = {
  vm_id: (1n << 48n) - 1n,
  vm_port: (1n << 32n) - 1n,
  ct_id: (1n << 64n) - 1n,
  dp_id: (1n << 64n) - 1n,
  dp_port: (1n << 32n) - 1n,
};

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return `${JSON.stringify(value) ?? String(value)} (${value === null ? "null" : typeof value})`;
  } catch {
    return typeof value;
  }
}

/** checkDecimal validates one canonical decimal string below `max`; `path` names the field in errors. */
export function checkDecimal(value: unknown, path: string, max: bigint): string {
  if (typeof value !== "string" || !DECIMAL.test(value)) {
    throw new ConfigError(
      `must be a decimal string without sign or leading zeros, as RouteFlow stores it; got ${describe(value)}`,
      path,
      value,
    );
  }
  if (BigInt(value) > max) throw new ConfigError(`is out of range (max ${max}); got ${value}`, path, value);
  return value;
}

/**
 * validateRfconfigRows checks rows before they are written: plain objects with exactly the five RouteFlow
 * fields, each a canonical decimal string. Throws ConfigError naming `<op>[i].<field>`.
 */
export function validateRfconfigRows(rows: unknown, op = "rfconfig"): RfconfigRow[] {
  if (!Array.isArray(rows))
    throw new ConfigError(`must be an array of rows; got ${describe(rows)}`, op, rows);
  return rows.map((row: unknown, i) => {
    const path = `${op}[${i}]`;
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new ConfigError(
        `must be an object {vm_id, vm_port, ct_id, dp_id, dp_port}; got ${describe(row)}`,
        path,
      );
    }
    for (const key of Object.keys(row)) {
      if (!(RFCONFIG_FIELDS as readonly string[]).includes(key)) {
        throw new ConfigError(`unknown field (allowed: ${RFCONFIG_FIELDS.join(", ")})`, `${path}.${key}`);
      }
    }
    const r = row as Record<string, unknown>;
    const out = {} as Record<(typeof RFCONFIG_FIELDS)[number], string>;
    for (const f of RFCONFIG_FIELDS) out[f] = checkDecimal(r[f], `${path}.${f}`, RFCONFIG_MAX[f]);
    return out;
  });
}

/** checkVmId validates a vm_id (decimal string of a 48-bit MAC). */
export function checkVmId(value: unknown, path = "vm_id"): string {
  return checkDecimal(value, path, RFCONFIG_MAX.vm_id);
}

const DPID_HEX = /^[0-9a-f]{16}$/;

/** checkDpidHex validates a datapath id in the store's key form: exactly 16 lower-case hex digits. */
export function checkDpidHex(value: unknown, path = "dpid"): string {
  if (typeof value !== "string" || !DPID_HEX.test(value)) {
    throw new ConfigError(
      `must be 16 lower-case hex digits (dpidToHex); got ${describe(value)}`,
      path,
      value,
    );
  }
  return value;
}

/** hasControl reports ASCII control characters (they would corrupt logs and status tables). */
export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** checkName validates a free-text identifier (owner, VM name, host): non-empty, printable, bounded. */
export function checkName(value: unknown, path: string, max = 256): string {
  // Control characters would corrupt logs and status tables; `$`-prefixed strings are harmless as values.
  if (typeof value !== "string" || value.length === 0 || value.length > max || hasControl(value)) {
    throw new ConfigError(
      `must be a printable string of 1..${max} characters; got ${describe(value)}`,
      path,
      value,
    );
  }
  return value;
}

const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !hasControl(s), "control characters are not allowed");

const patchSchema = z.strictObject({
  vmName: text(256).optional(),
  vmId: z.string().regex(DECIMAL, "must be a decimal string").optional(),
  vmMac: z
    .string()
    .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, "must be a lower-case MAC aa:bb:cc:dd:ee:ff")
    .optional(),
  host: text(256).optional(),
  hypervisor: text(64).optional(),
  uuid: z
    .string()
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be a lower-case uuid")
    .optional(),
  state: z.enum(VM_STATES).optional(),
  joinedAt: z.date().optional(),
  definedAt: z.date().optional(),
  startedAt: z.date().optional(),
  readyAt: z.date().optional(),
  leftAt: z.date().optional(),
  switch: z
    .strictObject({
      peer: text(300).optional(),
      version: z.number().int().min(1).max(255).optional(),
      connected: z.boolean().optional(),
    })
    .optional(),
  ports: z
    .array(
      z.strictObject({
        dpPort: z.number().int().min(0).max(0xffffffff),
        vmPort: z.number().int().min(0).max(0xffffffff).optional(),
        name: text(64).optional(),
        hwAddr: z
          .string()
          .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
          .optional(),
      }),
    )
    .max(4096)
    .optional(),
  lastError: z
    .strictObject({ kind: text(64), message: z.string().max(4096), at: z.date() })
    .nullable()
    .optional(),
  configFingerprint: text(128).optional(),
  attempts: z.number().int().min(0).optional(),
  prewarm: z
    .strictObject({
      at: z.date(),
      host: text(256),
      fingerprint: text(128),
      imageMiB: z
        .number()
        .int()
        .min(0)
        .max(1024 * 1024 * 1024),
    })
    .nullable()
    .optional(),
  prewarming: z
    .strictObject({ since: z.date(), host: text(256) })
    .nullable()
    .optional(),
  owner: text(256).optional(),
});

/** validatePatch checks a RecordPatch (unknown keys, wrong types, operator objects are rejected). */
export function validatePatch(patch: unknown, path = "patch"): RecordPatch {
  const r = patchSchema.safeParse(patch);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = [path, ...issue.path.map(String)].join(".");
    throw new ConfigError(issue.message, at);
  }
  // Drop keys whose value is undefined so that they never become `$set: {k: undefined}` (stored as null).
  return Object.fromEntries(Object.entries(r.data).filter(([, v]) => v !== undefined)) as RecordPatch;
}

const eventSchema = z.strictObject({
  at: z.date(),
  dpid: z.string().regex(DPID_HEX, "must be 16 lower-case hex digits").optional(),
  vm: text(256).optional(),
  kind: text(64),
  detail: z.string().max(8192).optional(),
});

/** validateEvent checks one event before it is logged. */
export function validateEvent(event: unknown, path = "event"): StoreEvent {
  const r = eventSchema.safeParse(event);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ConfigError(issue.message, [path, ...issue.path.map(String)].join("."));
  }
  return Object.fromEntries(
    Object.entries(r.data).filter(([, v]) => v !== undefined),
  ) as unknown as StoreEvent;
}
