/**
 * Reading virsh's output: `domstate --reason`, `dominfo`, `domstats`, `list --uuid --name`, `list --name`,
 * `nodeinfo` and `nodememstats`, printed under the C locale. Pure functions of the text; garbage never finds
 * Object.prototype members and only `parseDomstate` throws (an unknown state word is not guessed).
 */
import { RfbootError } from "../../common/errors.js";

/** DomainState is libvirt's virDomainState, by name. */
export type DomainState =
  "nostate" | "running" | "blocked" | "paused" | "shutdown" | "shutoff" | "crashed" | "pmsuspended";

/** DOMAIN_STATE_CODES maps virDomainState numbers (libvirt-domain.h) to names; `domstats` prints the numbers. */
export const DOMAIN_STATE_CODES: Readonly<Record<number, DomainState>> = Object.freeze({
  0: "nostate",
  1: "running",
  2: "blocked",
  3: "paused",
  4: "shutdown",
  5: "shutoff",
  6: "crashed",
  7: "pmsuspended",
});

/** DOMAIN_STATE_TEXTS maps `virsh domstate` words (virshDomainStateToString, C locale) to names. */
export const DOMAIN_STATE_TEXTS: Readonly<Record<string, DomainState>> = Object.freeze({
  "no state": "nostate",
  running: "running",
  idle: "blocked",
  paused: "paused",
  "in shutdown": "shutdown",
  "shut off": "shutoff",
  crashed: "crashed",
  pmsuspended: "pmsuspended",
});

/** parseDomstate parses `virsh domstate --reason` output such as `shut off (saved)`. */
export function parseDomstate(stdout: string): { state: DomainState; reason: string } {
  const line = stdout.trim().split("\n")[0]?.trim() ?? "";
  const m = /^(.*?)\s*(?:\(([^)]*)\))?$/.exec(line);
  const word = (m?.[1] ?? line).trim();
  // Own keys only: `toString` or `constructor` from a garbled output must not find Object.prototype members.
  const state = Object.hasOwn(DOMAIN_STATE_TEXTS, word) ? DOMAIN_STATE_TEXTS[word] : undefined;
  if (!state) throw new RfbootError(`unexpected virsh domstate output ${JSON.stringify(line.slice(0, 80))}`);
  return { state, reason: (m?.[2] ?? "").trim() };
}

/** parseDominfo parses `Key:   value` lines of `virsh dominfo`. */
export function parseDominfo(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** parseDomstats parses `virsh domstats` output into name -> {key: value}. */
export function parseDomstats(stdout: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of stdout.split("\n")) {
    const m = /^Domain: '(.*)'\s*$/.exec(line);
    if (m) {
      cur = {};
      out.set(m[1] as string, cur);
      continue;
    }
    const kv = /^\s+([^=\s]+)=(.*)$/.exec(line);
    if (kv && cur) cur[kv[1] as string] = (kv[2] as string).trim();
  }
  return out;
}

/** parseUuidNameList parses `virsh list --all --uuid --name` lines (`UUID NAME`). */
export function parseUuidNameList(stdout: string): { uuid: string; name: string }[] {
  const out: { uuid: string; name: string }[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s+(.+?)\s*$/i.exec(
      line.trim(),
    );
    if (m) out.push({ uuid: (m[1] as string).toLowerCase(), name: m[2] as string });
  }
  return out;
}

/** parseNameList parses `virsh list --name` output (one name per line, blank lines ignored). */
export function parseNameList(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/** NodeInfo is what `virsh nodeinfo` says of the host: its CPUs and its memory size. */
export interface NodeInfo {
  cpus: number;
  memoryKiB: number;
}

/** parseNodeinfo reads `CPU(s):` and `Memory size: N KiB` of `virsh nodeinfo`; undefined when either is missing. */
export function parseNodeinfo(stdout: string): NodeInfo | undefined {
  const kv = parseDominfo(stdout);
  const cpus = Number(kv["CPU(s)"]);
  const mem = /^(\d+)\s*KiB$/.exec(kv["Memory size"] ?? "");
  if (!Number.isInteger(cpus) || cpus <= 0 || !mem) return undefined;
  return { cpus, memoryKiB: Number(mem[1]) };
}

/** NodeMemory is `virsh nodememstats` of the whole host, KiB (libvirt reads the kernel's /proc/meminfo). */
export interface NodeMemory {
  totalKiB: number;
  freeKiB: number;
  buffersKiB: number;
  cachedKiB: number;
}

/** parseNodememstats reads the `total`, `free`, `buffers` and `cached` lines; undefined when one is missing. */
export function parseNodememstats(stdout: string): NodeMemory | undefined {
  const v: Record<string, number> = {};
  for (const line of stdout.split("\n")) {
    const m = /^\s*(total|free|buffers|cached)\s*:\s*(\d+)\s*KiB\s*$/.exec(line);
    if (m) v[m[1] as string] = Number(m[2]);
  }
  const { total, free, buffers, cached } = v;
  if (total === undefined || free === undefined || buffers === undefined || cached === undefined)
    return undefined;
  return { totalKiB: total, freeKiB: free, buffersKiB: buffers, cachedKiB: cached };
}
