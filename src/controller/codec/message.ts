/**
 * decodeMessage / encodeMessage: the header (OpenFlow 1.3.5 §7.1), then one switch per direction
 * over the message families, so that the compiler checks each direction covers every tag of the
 * OfMessage union. Wire type numbers come from the per-version tables, since
 * 1.0 and 1.1+ number their messages differently.
 */
import { OpenFlowError } from "../../common/errors.js";
import {
  NXT,
  NX_VENDOR_ID,
  OFPMP_PORT_DESC,
  OFPT10,
  OFPT11,
  OFP_HEADER_LEN,
  OFP_MAX_LEN,
  OFP_VERSIONS,
  isKnownVersion,
  versionName,
} from "./constants.js";
import { decodeError, encodeError } from "./error.js";
import { decodeFeaturesReply, encodeFeaturesReply } from "./features.js";
import { decodeHello, encodeHello } from "./hello.js";
import {
  decodePortDescReply,
  decodePortDescRequest,
  encodePortDescReply,
  encodePortDescRequest,
} from "./multipart.js";
import { decodePortStatus, encodePortStatus } from "./port-status.js";
import {
  decodeNxRole,
  decodeRole,
  decodeRoleStatus,
  encodeNxRole,
  encodeRole,
  encodeRoleStatus,
} from "./role.js";
import type { Header, MessageType, OfMessage } from "./types.js";
import { Reader, Writer } from "./wire.js";

/**
 * WIRE_TYPES gives, per message tag, its wire type on 1.0 and on 1.1+, and the first version that
 * has it (undefined: the version lacks the message). ROLE_* is 1.2+, ROLE_STATUS 1.4+; the Nicira
 * role messages are 1.0 VENDOR messages.
 */
const WIRE_TYPES: Readonly<
  Record<Exclude<MessageType, "unknown">, readonly [number | undefined, number | undefined, number]>
> = Object.freeze({
  hello: [OFPT10.HELLO, OFPT11.HELLO, OFP_VERSIONS["1.0"]],
  error: [OFPT10.ERROR, OFPT11.ERROR, OFP_VERSIONS["1.0"]],
  echo_request: [OFPT10.ECHO_REQUEST, OFPT11.ECHO_REQUEST, OFP_VERSIONS["1.0"]],
  echo_reply: [OFPT10.ECHO_REPLY, OFPT11.ECHO_REPLY, OFP_VERSIONS["1.0"]],
  features_request: [OFPT10.FEATURES_REQUEST, OFPT11.FEATURES_REQUEST, OFP_VERSIONS["1.0"]],
  features_reply: [OFPT10.FEATURES_REPLY, OFPT11.FEATURES_REPLY, OFP_VERSIONS["1.0"]],
  port_status: [OFPT10.PORT_STATUS, OFPT11.PORT_STATUS, OFP_VERSIONS["1.0"]],
  port_desc_request: [OFPT10.STATS_REQUEST, OFPT11.MULTIPART_REQUEST, OFP_VERSIONS["1.0"]],
  port_desc_reply: [OFPT10.STATS_REPLY, OFPT11.MULTIPART_REPLY, OFP_VERSIONS["1.0"]],
  role_request: [undefined, OFPT11.ROLE_REQUEST, OFP_VERSIONS["1.2"]],
  role_reply: [undefined, OFPT11.ROLE_REPLY, OFP_VERSIONS["1.2"]],
  role_status: [undefined, OFPT11.ROLE_STATUS, OFP_VERSIONS["1.4"]],
  nx_role_request: [OFPT10.VENDOR, undefined, OFP_VERSIONS["1.0"]],
  nx_role_reply: [OFPT10.VENDOR, undefined, OFP_VERSIONS["1.0"]],
  barrier_request: [OFPT10.BARRIER_REQUEST, OFPT11.BARRIER_REQUEST, OFP_VERSIONS["1.0"]],
  barrier_reply: [OFPT10.BARRIER_REPLY, OFPT11.BARRIER_REPLY, OFP_VERSIONS["1.0"]],
});

/** wireType returns the wire type number of a tag on a version, or undefined when that version lacks it. */
export function wireType(type: Exclude<MessageType, "unknown">, version: number): number | undefined {
  const [t10, t11, since] = WIRE_TYPES[type];
  if (type === "hello") return t10;
  if (!isKnownVersion(version) || version < since) return undefined;
  return version === OFP_VERSIONS["1.0"] ? t10 : t11;
}

/** DECODE_TAGS maps (1.0 or 1.1+) wire type to the tag whose body decides the decoder. */
function buildDecodeTable(column: 0 | 1): ReadonlyMap<number, Exclude<MessageType, "unknown">[]> {
  const m = new Map<number, Exclude<MessageType, "unknown">[]>();
  for (const [tag, cols] of Object.entries(WIRE_TYPES) as [
    Exclude<MessageType, "unknown">,
    (typeof WIRE_TYPES)["hello"],
  ][]) {
    const code = cols[column];
    if (code === undefined) continue;
    m.set(code, [...(m.get(code) ?? []), tag]);
  }
  return m;
}
const DECODE10 = buildDecodeTable(0);
const DECODE11 = buildDecodeTable(1);

function peekU16(frame: Uint8Array, at: number): number | undefined {
  return at + 2 <= frame.length ? (frame[at]! << 8) | frame[at + 1]! : undefined;
}

function peekU32(frame: Uint8Array, at: number): number | undefined {
  return at + 4 <= frame.length
    ? new DataView(frame.buffer, frame.byteOffset + at, 4).getUint32(0)
    : undefined;
}

/**
 * classify picks the tag of a frame from its version and type, looking into the body where one wire
 * type carries several messages (stats/multipart type, vendor + subtype). Anything not handled here
 * is "unknown" (kept verbatim).
 */
function classify(frame: Uint8Array, version: number, msgType: number): MessageType {
  if (msgType === OFPT10.HELLO) return "hello";
  if (!isKnownVersion(version)) return "unknown";
  const candidates = (version === OFP_VERSIONS["1.0"] ? DECODE10 : DECODE11).get(msgType);
  if (candidates === undefined) return "unknown";
  for (const tag of candidates) {
    if (version < WIRE_TYPES[tag][2]) continue;
    switch (tag) {
      case "port_desc_request":
      case "port_desc_reply":
        if (peekU16(frame, OFP_HEADER_LEN) === OFPMP_PORT_DESC) return tag;
        break;
      case "nx_role_request":
      case "nx_role_reply":
        if (peekU32(frame, OFP_HEADER_LEN) === NX_VENDOR_ID) {
          const sub = peekU32(frame, OFP_HEADER_LEN + 4);
          if (sub === (tag === "nx_role_request" ? NXT.ROLE_REQUEST : NXT.ROLE_REPLY)) return tag;
        }
        break;
      default:
        return tag;
    }
  }
  return "unknown";
}

/**
 * decodeMessage decodes one whole frame; throws OpenFlowError with the offset of the failing byte.
 * With `lenientHello`, a HELLO whose element list does not parse is returned with the elements that
 * did, the rest as `trailing` and the reason as `problem` (what a display tool wants; the session
 * refuses such a HELLO).
 */
export function decodeMessage(frame: Uint8Array, opts: { lenientHello?: boolean } = {}): OfMessage {
  if (frame.length < OFP_HEADER_LEN) {
    throw new OpenFlowError(
      `OpenFlow frame of ${frame.length} byte(s) is shorter than the ${OFP_HEADER_LEN}-byte header`,
      "truncated",
      frame.length,
    );
  }
  const r = new Reader(frame, "header");
  const version = r.u8("version");
  const msgType = r.u8("type");
  const length = r.u16("length");
  const xid = r.u32("xid");
  if (length < OFP_HEADER_LEN) {
    throw new OpenFlowError(
      `header length ${length} at offset 2 is below the ${OFP_HEADER_LEN}-byte header`,
      "bad-length",
      2,
    );
  }
  if (length !== frame.length) {
    throw new OpenFlowError(
      `header length ${length} at offset 2 does not match the frame's ${frame.length} bytes` +
        (length > frame.length ? " (message truncated)" : " (bytes after the message)"),
      "bad-length",
      2,
    );
  }
  const h: Header = { version, xid };
  const tag = classify(frame, version, msgType);
  const body = new Reader(frame, tag.toUpperCase(), OFP_HEADER_LEN);
  switch (tag) {
    case "hello":
      return decodeHello(body, h, opts.lenientHello === true);
    case "error":
      return decodeError(body, h);
    case "echo_request":
      return { type: "echo_request", version, xid, data: body.rest() };
    case "echo_reply":
      return { type: "echo_reply", version, xid, data: body.rest() };
    case "features_request":
      body.expectEnd();
      return { type: "features_request", version, xid };
    case "features_reply":
      return decodeFeaturesReply(body, h);
    case "port_status":
      return decodePortStatus(body, h);
    case "port_desc_request":
      return decodePortDescRequest(body, h);
    case "port_desc_reply":
      return decodePortDescReply(body, h);
    case "role_request":
    case "role_reply":
      return decodeRole(tag, body, h);
    case "role_status":
      return decodeRoleStatus(body, h);
    case "nx_role_request":
    case "nx_role_reply":
      return decodeNxRole(tag, body, h);
    case "barrier_request":
    case "barrier_reply":
      body.expectEnd();
      return { type: tag, version, xid };
    case "unknown":
      return { type: "unknown", version, xid, msgType, body: body.rest() };
  }
}

function checkHeaderField(msg: OfMessage, field: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new OpenFlowError(`${msg.type}: ${field} ${value} is not an integer from 0 to ${max}`, "bad-field");
  }
}

/** encodeMessage encodes a message to its wire bytes; the header length is computed. */
export function encodeMessage(msg: OfMessage): Buffer {
  checkHeaderField(msg, "version", msg.version, 0xff);
  checkHeaderField(msg, "xid", msg.xid, 0xffffffff);
  let msgType: number;
  if (msg.type === "unknown") {
    checkHeaderField(msg, "msgType", msg.msgType, 0xff);
    msgType = msg.msgType;
  } else {
    const t = wireType(msg.type, msg.version);
    if (t === undefined) {
      const since = WIRE_TYPES[msg.type][2];
      const needs = msg.type.startsWith("nx_") ? "1.0 only" : `OpenFlow ${versionName(since) ?? since}+`;
      throw new OpenFlowError(
        `${msg.type} does not exist in version byte ${msg.version} (${needs}): pick a version that has it`,
        "bad-version",
      );
    }
    msgType = t;
  }
  const w = new Writer(64);
  w.u8(msg.version).u8(msgType).u16(0).u32(msg.xid);
  switch (msg.type) {
    case "hello":
      encodeHello(w, msg);
      break;
    case "error":
      encodeError(w, msg);
      break;
    case "echo_request":
    case "echo_reply":
      w.bytes(msg.data);
      break;
    case "features_request":
    case "barrier_request":
    case "barrier_reply":
      break;
    case "features_reply":
      encodeFeaturesReply(w, msg);
      break;
    case "port_status":
      encodePortStatus(w, msg);
      break;
    case "port_desc_request":
      encodePortDescRequest(w, msg);
      break;
    case "port_desc_reply":
      encodePortDescReply(w, msg);
      break;
    case "role_request":
    case "role_reply":
      encodeRole(w, msg);
      break;
    case "role_status":
      encodeRoleStatus(w, msg);
      break;
    case "nx_role_request":
      encodeNxRole(w, NXT.ROLE_REQUEST, msg);
      break;
    case "nx_role_reply":
      encodeNxRole(w, NXT.ROLE_REPLY, msg);
      break;
    case "unknown":
      w.bytes(msg.body);
      break;
  }
  if (w.length > OFP_MAX_LEN) {
    throw new OpenFlowError(
      `${msg.type} encodes to ${w.length} bytes, over the ${OFP_MAX_LEN}-byte OpenFlow maximum: split it (REPLY_MORE) or send less data`,
      "bad-length",
    );
  }
  w.patchU16(2, w.length);
  return Buffer.from(w.finish());
}
