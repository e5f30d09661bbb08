/**
 * Datapath ids and RouteFlow vm_ids as they appear in config files: parsing (every accepted spelling,
 * always to BigInt, never `number`), rendering, and the deterministic vm_id of a template VM.
 */
import { createHash } from "node:crypto";
import { bigIntToMac, dpidToHex, parseDpid } from "../../common/dpid.js";

/** MAX_DPID is the largest 64-bit datapath id (OpenFlow 1.3.5 §7.3.1: `uint64_t datapath_id`). */
export const MAX_DPID = (1n << 64n) - 1n;

/** MAX_VM_ID is the largest 48-bit vm_id (RouteFlow reads eth0's MAC as an integer). */
export const MAX_VM_ID = (1n << 48n) - 1n;

/** DPID_FORMS documents the spellings parseDpidKey accepts, for error messages. */
export const DPID_FORMS = `"0x5", "5", "0000000000000005", "00:00:00:00:00:00:00:05" (hex, as OVS prints it) or "dec:5"`;

/**
 * parseDpidText reads a datapath id written as text: `0x`-prefixed or bare hex (bare is hex, as
 * `ovs-vsctl get bridge BR datapath-id` and RouteFlow's CSV write it), colon-separated hex, or `dec:N`.
 * Returns undefined when the text is none of these or exceeds 64 bits.
 */
export function parseDpidText(text: string): bigint | undefined {
  if (text.trim() !== text || text === "") return undefined;
  return parseDpid(text);
}

/**
 * dpidProblemText says why parseDpidText refused `text`: too large for 64 bits (OpenFlow 1.3.5 §7.3.1), or
 * not a spelling of a datapath id at all.
 */
export function dpidProblemText(text: string): string {
  const t = text.trim().toLowerCase();
  if (/^dec:[0-9]+$/.test(t)) {
    return `is too large: a datapath id has 64 bits (dec: at most ${MAX_DPID})`;
  }
  const hex = (t.startsWith("0x") ? t.slice(2) : t).replaceAll(":", "");
  if (t === text && /^[0-9a-f]{17,}$/.test(hex)) {
    return `has ${hex.length} hex digits: a datapath id has 64 bits, at most 16 hex digits (0x${MAX_DPID.toString(16)})`;
  }
  return `is not a datapath id: write ${DPID_FORMS}`;
}

/** dpidShortHex renders a dpid as lower-case hex without leading zeros (`5`, `7266767372667673`). */
export function dpidShortHex(dpid: bigint): string {
  return dpid.toString(16);
}

/** dpidKey renders a dpid the way rfboot writes datapaths keys: `0x` + short hex (`"0x5"`). */
export function dpidKey(dpid: bigint): string {
  return `0x${dpidShortHex(dpid)}`;
}

/** dpidHex16 is dpidToHex re-exported for config users: 16 lower-case hex digits. */
export const dpidHex16 = dpidToHex;

/** VM_ID_FORMS documents the spellings parseVmId accepts, for error messages. */
export const VM_ID_FORMS = `a MAC "02:a0:a0:a0:a0:a0", hex "0x2a0a0a0a0a0", decimal "dec:2888912904352" or a plain integer 2888912904352`;

/** VmIdProblem says why a vm_id was refused. */
export type VmIdProblem = "syntax" | "range" | "multicast" | "zero";

/**
 * parseVmId reads a RouteFlow vm_id (= the VM's eth0 MAC as a 48-bit integer). Accepted: a MAC with `:`
 * or `-` separators, `0x` hex, `dec:` decimal, or a safe integer (what RouteFlow stores, in decimal).
 * A bare digit string is refused: RouteFlow's CSV writes vm_ids in hex, MongoDB in decimal, and the same
 * digits mean different VMs in the two. The result must be a non-zero unicast MAC (bit 0 of byte 0 clear).
 */
export function parseVmId(v: unknown): { ok: true; value: bigint } | { ok: false; problem: VmIdProblem } {
  let value: bigint | undefined;
  if (typeof v === "number") {
    if (Number.isSafeInteger(v) && v >= 0) value = BigInt(v);
  } else if (typeof v === "bigint") {
    value = v;
  } else if (typeof v === "string") {
    const t = v.toLowerCase();
    if (/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/.test(t))
      value = BigInt("0x" + t.replace(/[:-]/g, ""));
    else if (/^0x[0-9a-f]{1,12}$/.test(t)) value = BigInt(t);
    else if (/^dec:[0-9]{1,15}$/.test(t)) value = BigInt(t.slice(4));
  }
  if (value === undefined) return { ok: false, problem: "syntax" };
  if (value > MAX_VM_ID || value < 0n) return { ok: false, problem: "range" };
  if (value === 0n) return { ok: false, problem: "zero" };
  if (((value >> 40n) & 1n) === 1n) return { ok: false, problem: "multicast" };
  return { ok: true, value };
}

/** vmIdProblemText turns a VmIdProblem into the sentence ConfigError shows. */
export function vmIdProblemText(p: VmIdProblem): string {
  switch (p) {
    case "syntax":
      return `is not a vm_id: write ${VM_ID_FORMS}`;
    case "range":
      return "exceeds 48 bits (a vm_id is a MAC address)";
    case "zero":
      return "must not be zero";
    case "multicast":
      return "is a multicast MAC (bit 0 of the first byte set); a NIC needs a unicast MAC such as 02:..";
  }
}

/** vmIdToMac renders a vm_id as a lower-case colon-separated MAC. */
export function vmIdToMac(vmId: bigint): string {
  return bigIntToMac(vmId);
}

/**
 * templateVmId derives the vm_id of a VM created by the `template` unknown-datapath policy, deterministically
 * from the dpid, always a locally administered unicast MAC (IEEE 802 §8.4: bit 1 of byte 0 set, bit 0 clear):
 * - dpid < 2^40: `02` + the dpid's 40 low bits, readable (`0x5` -> `02:00:00:00:00:05`);
 * - larger dpids: `06` + 40 bits of SHA-256(`rfboot-vm-id/<16-hex dpid>`). The two ranges never overlap.
 */
export function templateVmId(dpid: bigint): bigint {
  if (dpid < 1n << 40n) return (0x02n << 40n) | dpid;
  const h = createHash("sha256")
    .update(`rfboot-vm-id/${dpidToHex(dpid)}`)
    .digest();
  return (0x06n << 40n) | BigInt("0x" + h.subarray(0, 5).toString("hex"));
}
