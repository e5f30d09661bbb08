/**
 * Display names for decoded messages: `withNames` copies a message and puts, beside every enum and
 * flag-set number the codec decodes, its name for the message's version (the spec's constant without
 * its prefix: OFPPR_MODIFY -> "MODIFY"). The numbers stay; names never feed back into encoding.
 *
 * Shape, one rule per kind of field:
 * - an enum `x` gets `xName`: the name, or null when the number is unassigned on that version;
 * - a flag set `x` gets `xNames`: the names of its set bits from bit 0 up, a bit without a name as
 *   hex ("0x400"), [] for 0;
 * - a port number `portNo` gets `portNoName`: the reserved port's name ("LOCAL"), null for others;
 * - a PACKET_IN, kept as bytes, still gets `reason`/`reasonName` read from its body;
 * - text from the wire (port names, HELLO_FAILED text) goes through `printableText`.
 */
import {
  NX_ROLE,
  OFPAT10,
  OFPC10,
  OFPC11,
  OFPC12,
  OFPCRR,
  OFPCR_ROLE,
  OFPERR10,
  OFPERR11,
  OFPET10,
  OFPET11,
  OFPET_HELLO_FAILED,
  OFPHET,
  OFPMP13,
  OFPMP14,
  OFPMP15,
  OFPMPF_REPLY,
  OFPMPF_REQ,
  OFPMP_PORT_DESC,
  OFPP10,
  OFPP11,
  OFPPC10,
  OFPPC11,
  OFPPDPT,
  OFPPF10,
  OFPPF11,
  OFPPR,
  OFPPS10,
  OFPPS10_STP,
  OFPPS10_STP_MASK,
  OFPPS11,
  OFPR10,
  OFPR14,
  OFPRPT,
  OFPST10,
  OFPST11,
  OFPT10,
  OFPT11,
  OFP_HEADER_LEN,
  OFP_VERSIONS,
  isKnownVersion,
  msgTypeName,
  versionName,
} from "./constants.js";
import { wireType } from "./message.js";
import type { OfMessage, Port, PortProp } from "./types.js";

type Table = Readonly<Record<string, number>>;

const reversed = new WeakMap<Table, ReadonlyMap<number, string>>();

/** byCode derives (once per table) the code -> name map of a name -> code table. */
function byCode(table: Table): ReadonlyMap<number, string> {
  let m = reversed.get(table);
  if (m === undefined) {
    m = new Map(Object.entries(table).map(([k, v]) => [v, k]));
    reversed.set(table, m);
  }
  return m;
}

/** enumName names `value` in `table`, or null when the table has no such number. */
export function enumName(table: Table, value: number): string | null {
  return byCode(table).get(value) ?? null;
}

/** flagNames names the set bits of a 32-bit `value` from bit 0 up; a bit `table` lacks is shown as hex. */
export function flagNames(table: Table, value: number): string[] {
  const names = byCode(table);
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const b = 2 ** bit;
    if (Math.floor(value / b) % 2 === 1) out.push(names.get(b) ?? `0x${b.toString(16)}`);
  }
  return out;
}

/** OFPAT10_BITS is the 1.0 FEATURES_REPLY actions bitmap: bit 1 << type for each action type. */
const OFPAT10_BITS: Table = Object.freeze(
  Object.fromEntries(Object.entries(OFPAT10).map(([k, v]) => [k, 2 ** v])),
);

const is10 = (version: number): boolean => version === OFP_VERSIONS["1.0"];

/** portNoName names a reserved port number ("LOCAL", "CONTROLLER", 1.0's "NONE", 1.1+'s "ANY"). */
export function portNoName(version: number, portNo: number): string | null {
  return enumName(is10(version) ? OFPP10 : OFPP11, portNo);
}

/** portConfigNames names port config flags (1.0 has the STP and flood bits that 1.1 dropped). */
export function portConfigNames(version: number, config: number): string[] {
  return flagNames(is10(version) ? OFPPC10 : OFPPC11, config);
}

/**
 * portStateNames names port state flags. On 1.0, bits 8-9 are the STP state, named when not
 * STP_LISTEN (0, what every switch without STP reports; ovs-ofctl leaves it out the same way).
 */
export function portStateNames(version: number, state: number): string[] {
  if (!is10(version)) return flagNames(OFPPS11, state);
  const stp = state & OFPPS10_STP_MASK;
  const names = flagNames(OFPPS10, state - stp);
  if (stp !== 0) names.push(enumName(OFPPS10_STP, stp)!);
  return names;
}

/** portFeatureNames names a port feature bitmap (curr, advertised, supported, peer). */
export function portFeatureNames(version: number, features: number): string[] {
  return flagNames(is10(version) ? OFPPF10 : OFPPF11, features);
}

/** capabilityNames names FEATURES_REPLY capabilities (STP on 1.0, GROUP_STATS on 1.1+, PORT_BLOCKED on 1.2+). */
export function capabilityNames(version: number, capabilities: number): string[] {
  const table = is10(version) ? OFPC10 : version === OFP_VERSIONS["1.1"] ? OFPC11 : OFPC12;
  return flagNames(table, capabilities);
}

/** multipartTypeName names a stats (1.0-1.2) or multipart (1.3+) type. */
export function multipartTypeName(version: number, mpType: number): string | null {
  const table =
    version <= OFP_VERSIONS["1.0"]
      ? OFPST10
      : version <= OFP_VERSIONS["1.2"]
        ? OFPST11
        : version === OFP_VERSIONS["1.3"]
          ? OFPMP13
          : version === OFP_VERSIONS["1.4"]
            ? OFPMP14
            : OFPMP15;
  return enumName(table, mpType);
}

const OFPET11_CODES: Table = Object.freeze(
  Object.fromEntries(Object.entries(OFPET11).map(([k, v]) => [k, v[0]])),
);

/**
 * packetInReason reads the reason byte of a PACKET_IN body the codec keeps as bytes: after buffer_id,
 * total_len and in_port on 1.0 (§5.4.1), after buffer_id, in_port, in_phy_port and total_len on 1.1,
 * after buffer_id and total_len on 1.2+ (1.3.5 §7.4.1). Undefined when the body is shorter.
 */
function packetInReason(
  version: number,
  body: Uint8Array,
): { reason: number; name: string | null } | undefined {
  const at = is10(version) ? 8 : version === OFP_VERSIONS["1.1"] ? 14 : 6;
  const reason = body[at];
  if (reason === undefined) return undefined;
  if (is10(version) && reason === OFPR10.INVALID_TTL) return { reason, name: null };
  return { reason, name: enumName(version >= OFP_VERSIONS["1.4"] ? OFPR14 : OFPR10, reason) };
}

/** errorTypeName names an ERROR type on a version (null for a type that version lacks). */
export function errorTypeName(version: number, errType: number): string | null {
  if (is10(version)) return enumName(OFPET10, errType);
  const name = enumName(OFPET11_CODES, errType);
  return name !== null && version >= OFPET11[name]![1] ? name : null;
}

/** errorCodeName names an ERROR code of a type on a version (null when unassigned, and for EXPERIMENTER). */
export function errorCodeName(version: number, errType: number, code: number): string | null {
  const typeName = errorTypeName(version, errType);
  if (typeName === null) return null;
  const entry = (is10(version) ? OFPERR10 : OFPERR11)[typeName]?.[code];
  if (entry === undefined) return null;
  if (typeof entry === "string") return entry;
  const [name, since, older] = entry;
  return version >= since ? name : (older ?? null);
}

const C1_OR_INVISIBLE = /[\u0080-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/gu;
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/** utf8Length is the length of the UTF-8 sequence a lead byte starts, or 0 for a byte no sequence starts with. */
function utf8Length(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * printableText renders text bytes from the wire so that they cannot act on a terminal: NUL padding
 * (the first NUL and everything after it) is dropped; control bytes (C0, DEL), bytes that are not
 * UTF-8 and a backslash become `\xHH` escapes; C1 controls and invisible format characters (bidi
 * overrides, zero-width spaces, line separators) become `\uHHHH`. Other UTF-8 is kept.
 */
export function printableText(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  const b = nul === -1 ? bytes : bytes.subarray(0, nul);
  const hex = (x: number): string => `\\x${x.toString(16).padStart(2, "0")}`;
  let out = "";
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      out += c < 0x20 || c === 0x7f || c === 0x5c ? hex(c) : String.fromCharCode(c);
      i++;
      continue;
    }
    const n = utf8Length(c);
    let ch: string | undefined;
    if (n > 0 && i + n <= b.length) {
      try {
        ch = fatalUtf8.decode(b.subarray(i, i + n));
      } catch {
        ch = undefined;
      }
    }
    if (ch === undefined) {
      out += hex(c);
      i++;
      continue;
    }
    out += ch.replace(C1_OR_INVISIBLE, (x) => `\\u${x.charCodeAt(0).toString(16).padStart(4, "0")}`);
    i += n;
  }
  return out;
}

const utf8enc = new TextEncoder();

/** Named is a message or part of one with name fields added: plain data, still holding bigint and bytes. */
export type Named = Record<string, unknown>;

/** withExtras copies `obj`, putting each extra field right after the field named by its key. */
function withExtras(obj: object, extras: Record<string, readonly [string, unknown][]>): Named {
  const out: Named = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] = v;
    for (const [ek, ev] of extras[k] ?? []) out[ek] = ev;
  }
  return out;
}

function namedProp(version: number, p: PortProp): Named {
  if (p.type === "ethernet") {
    const f = (x: number) => portFeatureNames(version, x);
    return withExtras(p, {
      curr: [["currNames", f(p.curr)]],
      advertised: [["advertisedNames", f(p.advertised)]],
      supported: [["supportedNames", f(p.supported)]],
      peer: [["peerNames", f(p.peer)]],
    });
  }
  return withExtras(p, { propType: [["propTypeName", enumName(OFPPDPT, p.propType)]] });
}

/** namedPort names a port's number, flags and features, and makes its name printable. */
export function namedPort(version: number, port: Port): Named {
  const f = (x: number) => portFeatureNames(version, x);
  const out = withExtras(port, {
    portNo: [["portNoName", portNoName(version, port.portNo)]],
    config: [["configNames", portConfigNames(version, port.config)]],
    state: [["stateNames", portStateNames(version, port.state)]],
    curr: [["currNames", f(port.curr)]],
    advertised: [["advertisedNames", f(port.advertised)]],
    supported: [["supportedNames", f(port.supported)]],
    peer: [["peerNames", f(port.peer)]],
  });
  out.name = printableText(port.rawName ?? utf8enc.encode(port.name));
  if (port.properties) out.properties = port.properties.map((p) => namedProp(version, p));
  return out;
}

/** bitmapVersions lists the wire versions a HELLO version bitmap announces (bit n of word i: 32 * i + n). */
function bitmapVersions(bitmaps: readonly number[]): number[] {
  const out: number[] = [];
  bitmaps.forEach((word, i) => {
    for (let bit = 0; bit < 32; bit++) if (Math.floor(word / 2 ** bit) % 2 === 1) out.push(32 * i + bit);
  });
  return out;
}

/**
 * requestHeader reads the header of the request an ERROR's data starts with (OpenFlow 1.3.5 §7.5.4:
 * at least its first 64 bytes), when the data holds 8 bytes that look like one (a known version and
 * a length of at least 8).
 */
function requestHeader(data: Uint8Array): Named | undefined {
  if (data.length < OFP_HEADER_LEN) return undefined;
  const v = new DataView(data.buffer, data.byteOffset, OFP_HEADER_LEN);
  const reqVersion = v.getUint8(0);
  const reqType = v.getUint8(1);
  if (!isKnownVersion(reqVersion) || v.getUint16(2) < OFP_HEADER_LEN) return undefined;
  return {
    version: reqVersion,
    versionName: versionName(reqVersion) ?? null,
    msgType: reqType,
    msgTypeName: msgTypeName(reqVersion, reqType) ?? null,
    length: v.getUint16(2),
    xid: v.getUint32(4),
  };
}

/**
 * withNames returns `msg` as plain data with names beside its numbers (see the module comment), the
 * header first: type, version, versionName, xid, msgType, msgTypeName.
 */
export function withNames(msg: OfMessage): Named {
  const { version } = msg;
  const msgType = msg.type === "unknown" ? msg.msgType : (wireType(msg.type, version) ?? null);
  const head: Named = {
    type: msg.type,
    version,
    versionName: versionName(version) ?? null,
    xid: msg.xid,
    msgType,
    msgTypeName: msgType === null ? null : (msgTypeName(version, msgType) ?? null),
  };
  const body = (extras: Record<string, readonly [string, unknown][]> = {}): Named => ({
    ...head,
    ...withExtras(msg, extras),
    ...head,
  });
  const mp = (flagsTable: typeof OFPMPF_REQ | typeof OFPMPF_REPLY, flags: number) => ({
    flags: [
      ["flagsNames", flagNames(flagsTable, flags)],
      ["multipartType", OFPMP_PORT_DESC],
      ["multipartTypeName", multipartTypeName(version, OFPMP_PORT_DESC)],
    ] as [string, unknown][],
  });
  switch (msg.type) {
    case "hello":
      return {
        ...body(),
        elements: msg.elements.map((el) => {
          if (el.type === "unknown") {
            return withExtras(el, { elemType: [["elemTypeName", enumName(OFPHET, el.elemType)]] });
          }
          const versions = bitmapVersions(el.bitmaps);
          return withExtras(el, {
            bitmaps: [
              ["versions", versions],
              ["versionNames", versions.map((v) => versionName(v) ?? `0x${v.toString(16).padStart(2, "0")}`)],
            ],
          });
        }),
      };
    case "error": {
      const extras: Record<string, [string, unknown][]> = {
        errType: [["errTypeName", errorTypeName(version, msg.errType)]],
        code: [["codeName", errorCodeName(version, msg.errType, msg.code)]],
      };
      if (msg.errType === OFPET_HELLO_FAILED) extras.data = [["text", printableText(msg.data)]];
      else {
        const req = requestHeader(msg.data);
        if (req) extras.data = [["request", req]];
      }
      return body(extras);
    }
    case "features_reply": {
      const out = body({
        capabilities: [["capabilitiesNames", capabilityNames(version, msg.capabilities)]],
        ...(msg.actions !== undefined
          ? { actions: [["actionsNames", flagNames(OFPAT10_BITS, msg.actions)]] }
          : {}),
      });
      if (msg.ports) out.ports = msg.ports.map((p) => namedPort(version, p));
      return out;
    }
    case "port_status":
      return {
        ...body({ reason: [["reasonName", enumName(OFPPR, msg.reason)]] }),
        port: namedPort(version, msg.port),
      };
    case "port_desc_request":
      return body({
        ...mp(OFPMPF_REQ, msg.flags),
        ...(msg.portNo !== undefined ? { portNo: [["portNoName", portNoName(version, msg.portNo)]] } : {}),
      });
    case "port_desc_reply":
      return { ...body(mp(OFPMPF_REPLY, msg.flags)), ports: msg.ports.map((p) => namedPort(version, p)) };
    case "role_request":
    case "role_reply":
      return body({ role: [["roleName", enumName(OFPCR_ROLE, msg.role)]] });
    case "role_status":
      return {
        ...body({
          role: [["roleName", enumName(OFPCR_ROLE, msg.role)]],
          reason: [["reasonName", enumName(OFPCRR, msg.reason)]],
        }),
        properties: msg.properties.map((p) =>
          withExtras(p, { propType: [["propTypeName", enumName(OFPRPT, p.propType)]] }),
        ),
      };
    case "nx_role_request":
    case "nx_role_reply":
      return body({ role: [["roleName", enumName(NX_ROLE, msg.role)]] });
    case "unknown": {
      if (msgType === OFPT10.PACKET_IN) {
        const pi = packetInReason(version, msg.body);
        if (pi === undefined) return body();
        return { ...body(), reason: pi.reason, reasonName: pi.name, body: msg.body };
      }
      const stats = is10(version)
        ? msgType === OFPT10.STATS_REQUEST || msgType === OFPT10.STATS_REPLY
        : msgType === OFPT11.MULTIPART_REQUEST || msgType === OFPT11.MULTIPART_REPLY;
      if (!stats || msg.body.length < 2) return body();
      const mpType = (msg.body[0]! << 8) | msg.body[1]!;
      return {
        ...body(),
        multipartType: mpType,
        multipartTypeName: multipartTypeName(version, mpType),
        body: msg.body,
      };
    }
    default:
      return body();
  }
}
