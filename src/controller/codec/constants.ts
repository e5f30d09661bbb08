/**
 * OpenFlow numbers as frozen code tables with their reverse maps, so that a number on the wire is
 * written down once, beside its name and spec section. Message type numbers differ between OpenFlow
 * 1.0 and 1.1+, so every per-version lookup goes through these tables.
 */

/** OFP_VERSIONS maps a version name to its wire byte (OpenFlow 1.3.5 §7.1: ofp_header.version). */
export const OFP_VERSIONS = Object.freeze({
  "1.0": 0x01,
  "1.1": 0x02,
  "1.2": 0x03,
  "1.3": 0x04,
  "1.4": 0x05,
  "1.5": 0x06,
} as const);

/** OfVersionName is a version name such as "1.3". */
export type OfVersionName = keyof typeof OFP_VERSIONS;

/** OfVersion is a wire version byte this codec knows (1..6). */
export type OfVersion = (typeof OFP_VERSIONS)[OfVersionName];

/** invert derives the code -> name map of a name -> code table. */
function invert<K extends string>(table: Readonly<Record<K, number>>): ReadonlyMap<number, K> {
  return new Map(Object.entries(table).map(([k, v]) => [v as number, k as K]));
}

const VERSION_BY_BYTE = invert(OFP_VERSIONS);

/** versionName returns "1.0".."1.5" for a wire version byte, or undefined for an unknown byte. */
export function versionName(version: number): OfVersionName | undefined {
  return VERSION_BY_BYTE.get(version);
}

/** isKnownVersion tells whether a wire version byte is OpenFlow 1.0..1.5. */
export function isKnownVersion(version: number): version is OfVersion {
  return VERSION_BY_BYTE.has(version);
}

/** OFP_HEADER_LEN is the size of ofp_header, the smallest valid message. */
export const OFP_HEADER_LEN = 8;

/** OFP_MAX_LEN is the largest length the 16-bit length field can express. */
export const OFP_MAX_LEN = 0xffff;

/** OFPT10 is the OpenFlow 1.0 message type table (OpenFlow 1.0.0 §5.1). */
export const OFPT10 = Object.freeze({
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  VENDOR: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  PORT_MOD: 15,
  STATS_REQUEST: 16,
  STATS_REPLY: 17,
  BARRIER_REQUEST: 18,
  BARRIER_REPLY: 19,
  QUEUE_GET_CONFIG_REQUEST: 20,
  QUEUE_GET_CONFIG_REPLY: 21,
} as const);

/** OFPT11 is the OpenFlow 1.1+ message type table (OpenFlow 1.5.1 §7.1; later versions only add codes). */
export const OFPT11 = Object.freeze({
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  EXPERIMENTER: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  GROUP_MOD: 15,
  PORT_MOD: 16,
  TABLE_MOD: 17,
  MULTIPART_REQUEST: 18,
  MULTIPART_REPLY: 19,
  BARRIER_REQUEST: 20,
  BARRIER_REPLY: 21,
  QUEUE_GET_CONFIG_REQUEST: 22,
  QUEUE_GET_CONFIG_REPLY: 23,
  ROLE_REQUEST: 24,
  ROLE_REPLY: 25,
  GET_ASYNC_REQUEST: 26,
  GET_ASYNC_REPLY: 27,
  SET_ASYNC: 28,
  METER_MOD: 29,
  ROLE_STATUS: 30,
  TABLE_STATUS: 31,
  REQUESTFORWARD: 32,
  BUNDLE_CONTROL: 33,
  BUNDLE_ADD_MESSAGE: 34,
  CONTROLLER_STATUS: 35,
} as const);

const OFPT10_NAMES = invert(OFPT10);
const OFPT11_NAMES = invert(OFPT11);

/** msgTypeName names a wire message type for a version ("PACKET_IN"), or undefined when unassigned. */
export function msgTypeName(version: number, msgType: number): string | undefined {
  return (version === OFP_VERSIONS["1.0"] ? OFPT10_NAMES : OFPT11_NAMES).get(msgType);
}

/** msgTypes returns the message type table of a wire version (1.0's, or 1.1+'s for every other byte). */
export function msgTypes(version: number): typeof OFPT10 | typeof OFPT11 {
  return version === OFP_VERSIONS["1.0"] ? OFPT10 : OFPT11;
}

/** OFPMP_PORT_DESC is the multipart type of PORT_DESC (1.3+) and OVS's OFPST_PORT_DESC stats type on 1.0. */
export const OFPMP_PORT_DESC = 13;

/** OFPMPF_REPLY_MORE is the multipart/stats reply flag "more parts follow" (OpenFlow 1.3.5 §7.3.5). */
export const OFPMPF_REPLY_MORE = 1;

/** OFPP_ANY is the 1.1+ wildcard port number (all ports). */
export const OFPP_ANY = 0xffffffff;

/** OFPHET_VERSIONBITMAP is the HELLO element type of the version bitmap (OpenFlow 1.3.5 §7.5.1). */
export const OFPHET_VERSIONBITMAP = 1;

/** OFPET_HELLO_FAILED is the error type of a failed HELLO; OFPHFC_INCOMPATIBLE its "no common version" code. */
export const OFPET_HELLO_FAILED = 0;

/** OFPHFC_INCOMPATIBLE: no compatible version (OpenFlow 1.3.5 §7.5.4.1). */
export const OFPHFC_INCOMPATIBLE = 0;

/** OFPET_BAD_REQUEST is the error type of a request (any message) the receiver could not understand. */
export const OFPET_BAD_REQUEST = 1;

/**
 * OFPBRC is the part of the OFPET_BAD_REQUEST code table rfboot sends; these numbers are the same in
 * 1.0 (§5.4.4) and 1.1-1.5 (1.3.5 §7.5.4.2). BAD_LEN: "wrong request length for type".
 */
export const OFPBRC = Object.freeze({ BAD_VERSION: 0, BAD_TYPE: 1, BAD_LEN: 6 } as const);

/** OFPET_ROLE_REQUEST_FAILED is the error type of a refused ROLE_REQUEST (1.2+, OpenFlow 1.3.5 §7.5.4.2). */
export const OFPET_ROLE_REQUEST_FAILED = 11;

/**
 * OFPRRFC is the OFPET_ROLE_REQUEST_FAILED code table (OpenFlow 1.3.5 §7.5.4.2). STALE: the request's
 * generation_id is older than the switch's.
 */
export const OFPRRFC = Object.freeze({ STALE: 0, UNSUP: 1, BAD_ROLE: 2 } as const);

/** OFPET_EXPERIMENTER is the experimenter error type (1.2+), carrying exp_type and experimenter id. */
export const OFPET_EXPERIMENTER = 0xffff;

/** OFPCR_ROLE is the controller role table of ROLE_REQUEST/REPLY/STATUS (OpenFlow 1.3.5 §7.3.9). */
export const OFPCR_ROLE = Object.freeze({ NOCHANGE: 0, EQUAL: 1, MASTER: 2, SLAVE: 3 } as const);

/** NX_VENDOR_ID is Nicira's vendor/experimenter id (OVS `NX_VENDOR_ID`). */
export const NX_VENDOR_ID = 0x00002320;

/** NXT is the Nicira vendor message subtype table used here (OVS nicira-ext). */
export const NXT = Object.freeze({ ROLE_REQUEST: 10, ROLE_REPLY: 11 } as const);

/** NX_ROLE is Nicira's role table: OTHER (= equal), MASTER, SLAVE. */
export const NX_ROLE = Object.freeze({ OTHER: 0, MASTER: 1, SLAVE: 2 } as const);

/** OFPPR is the PORT_STATUS reason table. */
export const OFPPR = Object.freeze({ ADD: 0, DELETE: 1, MODIFY: 2 } as const);

/** OFPPDPT is the 1.4+ port description property type table. */
export const OFPPDPT = Object.freeze({ ETHERNET: 0, OPTICAL: 1, EXPERIMENTER: 0xffff } as const);

/** OFPET_NAMES names the 1.3 error types, for human-readable output. */
export const OFPET_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "HELLO_FAILED"],
  [1, "BAD_REQUEST"],
  [2, "BAD_ACTION"],
  [3, "BAD_INSTRUCTION"],
  [4, "BAD_MATCH"],
  [5, "FLOW_MOD_FAILED"],
  [6, "GROUP_MOD_FAILED"],
  [7, "PORT_MOD_FAILED"],
  [8, "TABLE_MOD_FAILED"],
  [9, "QUEUE_OP_FAILED"],
  [10, "SWITCH_CONFIG_FAILED"],
  [OFPET_ROLE_REQUEST_FAILED, "ROLE_REQUEST_FAILED"],
  [12, "METER_MOD_FAILED"],
  [13, "TABLE_FEATURES_FAILED"],
  [0xffff, "EXPERIMENTER"],
]);
