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

/*
 * Names for display: the numbers of every enum and flag set the codec decodes, per version where the
 * versions differ. Names are the spec's constants without their prefix (OFPPC_PORT_DOWN -> PORT_DOWN).
 */

/** OFPHET is the HELLO element type table (OpenFlow 1.3.5 §7.5.1). */
export const OFPHET = Object.freeze({ VERSIONBITMAP: OFPHET_VERSIONBITMAP } as const);

/** OFPPC10 is the OpenFlow 1.0 port config flag set (OpenFlow 1.0.0 §5.2.1, ofp_port_config). */
export const OFPPC10 = Object.freeze({
  PORT_DOWN: 1 << 0,
  NO_STP: 1 << 1,
  NO_RECV: 1 << 2,
  NO_RECV_STP: 1 << 3,
  NO_FLOOD: 1 << 4,
  NO_FWD: 1 << 5,
  NO_PACKET_IN: 1 << 6,
} as const);

/** OFPPC11 is the 1.1+ port config flag set (OpenFlow 1.3.5 §7.2.1): 1.0's STP and flood bits are gone. */
export const OFPPC11 = Object.freeze({
  PORT_DOWN: 1 << 0,
  NO_RECV: 1 << 2,
  NO_FWD: 1 << 5,
  NO_PACKET_IN: 1 << 6,
} as const);

/** OFPPS10 is the OpenFlow 1.0 port state flag set; bits 8-9 hold the STP state (OFPPS10_STP). */
export const OFPPS10 = Object.freeze({ LINK_DOWN: 1 << 0 } as const);

/** OFPPS10_STP_MASK selects the 2-bit STP state field of a 1.0 port state (OpenFlow 1.0.0 §5.2.1). */
export const OFPPS10_STP_MASK = 3 << 8;

/** OFPPS10_STP is the table of 1.0 STP states, the values of the field under OFPPS10_STP_MASK. */
export const OFPPS10_STP = Object.freeze({
  STP_LISTEN: 0 << 8,
  STP_LEARN: 1 << 8,
  STP_FORWARD: 2 << 8,
  STP_BLOCK: 3 << 8,
} as const);

/** OFPPS11 is the 1.1+ port state flag set (OpenFlow 1.3.5 §7.2.1). */
export const OFPPS11 = Object.freeze({ LINK_DOWN: 1 << 0, BLOCKED: 1 << 1, LIVE: 1 << 2 } as const);

/** OFPPF10 is the OpenFlow 1.0 port feature flag set: speeds, media, negotiation (OpenFlow 1.0.0 §5.2.1). */
export const OFPPF10 = Object.freeze({
  "10MB_HD": 1 << 0,
  "10MB_FD": 1 << 1,
  "100MB_HD": 1 << 2,
  "100MB_FD": 1 << 3,
  "1GB_HD": 1 << 4,
  "1GB_FD": 1 << 5,
  "10GB_FD": 1 << 6,
  COPPER: 1 << 7,
  FIBER: 1 << 8,
  AUTONEG: 1 << 9,
  PAUSE: 1 << 10,
  PAUSE_ASYM: 1 << 11,
} as const);

/** OFPPF11 is the 1.1+ port feature flag set, which adds 40G, 100G, 1T and OTHER (OpenFlow 1.3.5 §7.2.1). */
export const OFPPF11 = Object.freeze({
  "10MB_HD": 1 << 0,
  "10MB_FD": 1 << 1,
  "100MB_HD": 1 << 2,
  "100MB_FD": 1 << 3,
  "1GB_HD": 1 << 4,
  "1GB_FD": 1 << 5,
  "10GB_FD": 1 << 6,
  "40GB_FD": 1 << 7,
  "100GB_FD": 1 << 8,
  "1TB_FD": 1 << 9,
  OTHER: 1 << 10,
  COPPER: 1 << 11,
  FIBER: 1 << 12,
  AUTONEG: 1 << 13,
  PAUSE: 1 << 14,
  PAUSE_ASYM: 1 << 15,
} as const);

/** OFPC10 is the OpenFlow 1.0 switch capability flag set (OpenFlow 1.0.0 §5.3.1). */
export const OFPC10 = Object.freeze({
  FLOW_STATS: 1 << 0,
  TABLE_STATS: 1 << 1,
  PORT_STATS: 1 << 2,
  STP: 1 << 3,
  RESERVED: 1 << 4,
  IP_REASM: 1 << 5,
  QUEUE_STATS: 1 << 6,
  ARP_MATCH_IP: 1 << 7,
} as const);

/** OFPC11 is the OpenFlow 1.1 capability flag set: GROUP_STATS replaces STP, RESERVED is gone. */
export const OFPC11 = Object.freeze({
  FLOW_STATS: 1 << 0,
  TABLE_STATS: 1 << 1,
  PORT_STATS: 1 << 2,
  GROUP_STATS: 1 << 3,
  IP_REASM: 1 << 5,
  QUEUE_STATS: 1 << 6,
  ARP_MATCH_IP: 1 << 7,
} as const);

/** OFPC12 is the 1.2+ capability flag set (OpenFlow 1.3.5 §7.3.1): PORT_BLOCKED replaces ARP_MATCH_IP. */
export const OFPC12 = Object.freeze({
  FLOW_STATS: 1 << 0,
  TABLE_STATS: 1 << 1,
  PORT_STATS: 1 << 2,
  GROUP_STATS: 1 << 3,
  IP_REASM: 1 << 5,
  QUEUE_STATS: 1 << 6,
  PORT_BLOCKED: 1 << 8,
} as const);

/**
 * OFPAT10 is the OpenFlow 1.0 action type table (OpenFlow 1.0.0 §5.2.4); FEATURES_REPLY's `actions`
 * has bit 1 << type set for each supported type.
 */
export const OFPAT10 = Object.freeze({
  OUTPUT: 0,
  SET_VLAN_VID: 1,
  SET_VLAN_PCP: 2,
  STRIP_VLAN: 3,
  SET_DL_SRC: 4,
  SET_DL_DST: 5,
  SET_NW_SRC: 6,
  SET_NW_DST: 7,
  SET_NW_TOS: 8,
  SET_TP_SRC: 9,
  SET_TP_DST: 10,
  ENQUEUE: 11,
} as const);

/** OFPP10 is the OpenFlow 1.0 reserved port number table (OpenFlow 1.0.0 §5.2.1, 16-bit). */
export const OFPP10 = Object.freeze({
  IN_PORT: 0xfff8,
  TABLE: 0xfff9,
  NORMAL: 0xfffa,
  FLOOD: 0xfffb,
  ALL: 0xfffc,
  CONTROLLER: 0xfffd,
  LOCAL: 0xfffe,
  NONE: 0xffff,
} as const);

/** OFPP11 is the 1.1+ reserved port number table (OpenFlow 1.3.5 §7.2.1, 32-bit; ANY replaces NONE). */
export const OFPP11 = Object.freeze({
  IN_PORT: 0xfffffff8,
  TABLE: 0xfffffff9,
  NORMAL: 0xfffffffa,
  FLOOD: 0xfffffffb,
  ALL: 0xfffffffc,
  CONTROLLER: 0xfffffffd,
  LOCAL: 0xfffffffe,
  ANY: OFPP_ANY,
} as const);

/** OFPST10 is the OpenFlow 1.0 stats type table (OpenFlow 1.0.0 §5.3.5; 13 is Open vSwitch's PORT_DESC). */
export const OFPST10 = Object.freeze({
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT: 4,
  QUEUE: 5,
  PORT_DESC: OFPMP_PORT_DESC,
  VENDOR: 0xffff,
} as const);

/** OFPST11 is the OpenFlow 1.1-1.2 stats type table (1.2 adds GROUP_FEATURES). */
export const OFPST11 = Object.freeze({
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT: 4,
  QUEUE: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  EXPERIMENTER: 0xffff,
} as const);

/** OFPMP13 is the OpenFlow 1.3 multipart type table (OpenFlow 1.3.5 §7.3.5). */
export const OFPMP13 = Object.freeze({
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  QUEUE: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER: 9,
  METER_CONFIG: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: OFPMP_PORT_DESC,
  EXPERIMENTER: 0xffff,
} as const);

/** OFPMP14 is the OpenFlow 1.4 multipart type table (OpenFlow 1.4.1 §7.3.5): QUEUE_STATS, descs, monitor. */
export const OFPMP14 = Object.freeze({
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  QUEUE_STATS: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER: 9,
  METER_CONFIG: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: OFPMP_PORT_DESC,
  TABLE_DESC: 14,
  QUEUE_DESC: 15,
  FLOW_MONITOR: 16,
  EXPERIMENTER: 0xffff,
} as const);

/** OFPMP15 is the OpenFlow 1.5 multipart type table (OpenFlow 1.5.1 §7.3.5), which renames several. */
export const OFPMP15 = Object.freeze({
  DESC: 0,
  FLOW_DESC: 1,
  AGGREGATE_STATS: 2,
  TABLE_STATS: 3,
  PORT_STATS: 4,
  QUEUE_STATS: 5,
  GROUP_STATS: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER_STATS: 9,
  METER_DESC: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: OFPMP_PORT_DESC,
  TABLE_DESC: 14,
  QUEUE_DESC: 15,
  FLOW_MONITOR: 16,
  FLOW_STATS: 17,
  CONTROLLER_STATUS: 18,
  BUNDLE_FEATURES: 19,
  EXPERIMENTER: 0xffff,
} as const);

/** OFPMPF_REQ / OFPMPF_REPLY are the multipart (stats) request and reply flag sets. */
export const OFPMPF_REQ = Object.freeze({ REQ_MORE: 1 } as const);
export const OFPMPF_REPLY = Object.freeze({ REPLY_MORE: OFPMPF_REPLY_MORE } as const);

/** OFPCRR is the ROLE_STATUS reason table (OpenFlow 1.4.1 §7.4.4). */
export const OFPCRR = Object.freeze({ MASTER_REQUEST: 0, CONFIG: 1, EXPERIMENTER: 2 } as const);

/** OFPRPT is the ROLE_STATUS property type table (OpenFlow 1.4.1 §7.4.4). */
export const OFPRPT = Object.freeze({ EXPERIMENTER: 0xffff } as const);

/** OFPET10 is the OpenFlow 1.0 error type table (OpenFlow 1.0.0 §5.4.4). */
export const OFPET10 = Object.freeze({
  HELLO_FAILED: 0,
  BAD_REQUEST: 1,
  BAD_ACTION: 2,
  FLOW_MOD_FAILED: 3,
  PORT_MOD_FAILED: 4,
  QUEUE_OP_FAILED: 5,
} as const);

/**
 * OFPET11 is the 1.1+ error type table (OpenFlow 1.5.1 §7.5.4): each entry's first version, so that a
 * type a version lacks is not named on it.
 */
export const OFPET11: Readonly<Record<string, readonly [code: number, since: number]>> = Object.freeze({
  HELLO_FAILED: [0, 2],
  BAD_REQUEST: [1, 2],
  BAD_ACTION: [2, 2],
  BAD_INSTRUCTION: [3, 2],
  BAD_MATCH: [4, 2],
  FLOW_MOD_FAILED: [5, 2],
  GROUP_MOD_FAILED: [6, 2],
  PORT_MOD_FAILED: [7, 2],
  TABLE_MOD_FAILED: [8, 2],
  QUEUE_OP_FAILED: [9, 2],
  SWITCH_CONFIG_FAILED: [10, 2],
  ROLE_REQUEST_FAILED: [OFPET_ROLE_REQUEST_FAILED, 3],
  METER_MOD_FAILED: [12, 4],
  TABLE_FEATURES_FAILED: [13, 4],
  BAD_PROPERTY: [14, 5],
  ASYNC_CONFIG_FAILED: [15, 5],
  FLOW_MONITOR_FAILED: [16, 5],
  BUNDLE_FAILED: [17, 5],
  EXPERIMENTER: [OFPET_EXPERIMENTER, 3],
});

/** OFPERR10 is the OpenFlow 1.0 error code table per error type name (OpenFlow 1.0.0 §5.4.4). */
export const OFPERR10: Readonly<Record<string, readonly string[]>> = Object.freeze({
  HELLO_FAILED: ["INCOMPATIBLE", "EPERM"],
  BAD_REQUEST: [
    "BAD_VERSION",
    "BAD_TYPE",
    "BAD_STAT",
    "BAD_VENDOR",
    "BAD_SUBTYPE",
    "EPERM",
    "BAD_LEN",
    "BUFFER_EMPTY",
    "BUFFER_UNKNOWN",
  ],
  BAD_ACTION: [
    "BAD_TYPE",
    "BAD_LEN",
    "BAD_VENDOR",
    "BAD_VENDOR_TYPE",
    "BAD_OUT_PORT",
    "BAD_ARGUMENT",
    "EPERM",
    "TOO_MANY",
    "BAD_QUEUE",
  ],
  FLOW_MOD_FAILED: ["ALL_TABLES_FULL", "OVERLAP", "EPERM", "BAD_EMERG_TIMEOUT", "BAD_COMMAND", "UNSUPPORTED"],
  PORT_MOD_FAILED: ["BAD_PORT", "BAD_HW_ADDR"],
  QUEUE_OP_FAILED: ["BAD_PORT", "BAD_QUEUE", "EPERM"],
});

/**
 * OFPERR11 is the 1.1+ error code table per error type name (OpenFlow 1.5.1 §7.5.4): the code is the
 * index; an entry [name, since] is a code that first appeared in wire version `since`, and
 * [name, since, older] names its code `older` before that version.
 */
export const OFPERR11: Readonly<Record<string, readonly (string | readonly [string, number, string?])[]>> =
  Object.freeze({
    HELLO_FAILED: ["INCOMPATIBLE", "EPERM"],
    BAD_REQUEST: [
      "BAD_VERSION",
      "BAD_TYPE",
      ["BAD_MULTIPART", 4, "BAD_STAT"],
      "BAD_EXPERIMENTER",
      ["BAD_EXP_TYPE", 3, "BAD_SUBTYPE"],
      "EPERM",
      "BAD_LEN",
      "BUFFER_EMPTY",
      "BUFFER_UNKNOWN",
      "BAD_TABLE_ID",
      ["IS_SLAVE", 3],
      ["BAD_PORT", 3],
      ["BAD_PACKET", 3],
      ["MULTIPART_BUFFER_OVERFLOW", 4],
      ["MULTIPART_REQUEST_TIMEOUT", 5],
      ["MULTIPART_REPLY_TIMEOUT", 5],
      ["MULTIPART_BAD_SCHED", 6],
      ["PIPELINE_FIELDS_ONLY", 6],
    ],
    BAD_ACTION: [
      "BAD_TYPE",
      "BAD_LEN",
      "BAD_EXPERIMENTER",
      ["BAD_EXP_TYPE", 3, "BAD_EXPERIMENTER_TYPE"],
      "BAD_OUT_PORT",
      "BAD_ARGUMENT",
      "EPERM",
      "TOO_MANY",
      "BAD_QUEUE",
      "BAD_OUT_GROUP",
      "MATCH_INCONSISTENT",
      "UNSUPPORTED_ORDER",
      "BAD_TAG",
      ["BAD_SET_TYPE", 3],
      ["BAD_SET_LEN", 3],
      ["BAD_SET_ARGUMENT", 3],
      ["BAD_SET_MASK", 6],
      ["BAD_METER", 6],
    ],
    BAD_INSTRUCTION: [
      "UNKNOWN_INST",
      "UNSUP_INST",
      "BAD_TABLE_ID",
      "UNSUP_METADATA",
      "UNSUP_METADATA_MASK",
      ["BAD_EXPERIMENTER", 3, "UNSUP_EXP_INST"],
      ["BAD_EXP_TYPE", 3],
      ["BAD_LEN", 3],
      ["EPERM", 3],
      ["DUP_INST", 5],
    ],
    BAD_MATCH: [
      "BAD_TYPE",
      "BAD_LEN",
      "BAD_TAG",
      "BAD_DL_ADDR_MASK",
      "BAD_NW_ADDR_MASK",
      "BAD_WILDCARDS",
      "BAD_FIELD",
      "BAD_VALUE",
      ["BAD_MASK", 3],
      ["BAD_PREREQ", 3],
      ["DUP_FIELD", 3],
      ["EPERM", 3],
    ],
    FLOW_MOD_FAILED: [
      "UNKNOWN",
      "TABLE_FULL",
      "BAD_TABLE_ID",
      "OVERLAP",
      "EPERM",
      "BAD_TIMEOUT",
      "BAD_COMMAND",
      ["BAD_FLAGS", 3],
      ["CANT_SYNC", 5],
      ["BAD_PRIORITY", 5],
      ["IS_SYNC", 5],
    ],
    GROUP_MOD_FAILED: [
      "GROUP_EXISTS",
      "INVALID_GROUP",
      "WEIGHT_UNSUPPORTED",
      "OUT_OF_GROUPS",
      "OUT_OF_BUCKETS",
      "CHAINING_UNSUPPORTED",
      "WATCH_UNSUPPORTED",
      "LOOP",
      "UNKNOWN_GROUP",
      ["CHAINED_GROUP", 3],
      ["BAD_TYPE", 3],
      ["BAD_COMMAND", 3],
      ["BAD_BUCKET", 3],
      ["BAD_WATCH", 3],
      ["EPERM", 3],
      ["UNKNOWN_BUCKET", 6],
      ["BUCKET_EXISTS", 6],
    ],
    PORT_MOD_FAILED: ["BAD_PORT", "BAD_HW_ADDR", "BAD_CONFIG", "BAD_ADVERTISE", ["EPERM", 3]],
    TABLE_MOD_FAILED: ["BAD_TABLE", "BAD_CONFIG", ["EPERM", 3]],
    QUEUE_OP_FAILED: ["BAD_PORT", "BAD_QUEUE", "EPERM"],
    SWITCH_CONFIG_FAILED: ["BAD_FLAGS", "BAD_LEN", ["EPERM", 3]],
    ROLE_REQUEST_FAILED: ["STALE", "UNSUP", "BAD_ROLE", ["ID_UNSUP", 6], ["ID_IN_USE", 6]],
    METER_MOD_FAILED: [
      "UNKNOWN",
      "METER_EXISTS",
      "INVALID_METER",
      "UNKNOWN_METER",
      "BAD_COMMAND",
      "BAD_FLAGS",
      "BAD_RATE",
      "BAD_BURST",
      "BAD_BAND",
      "BAD_BAND_VALUE",
      "OUT_OF_METERS",
      "OUT_OF_BANDS",
    ],
    TABLE_FEATURES_FAILED: [
      "BAD_TABLE",
      "BAD_METADATA",
      "BAD_TYPE",
      "BAD_LEN",
      "BAD_ARGUMENT",
      "EPERM",
      ["BAD_CAPA", 6],
      ["BAD_MAX_ENT", 6],
      ["BAD_FEATURES", 6],
      ["BAD_COMMAND", 6],
      ["TOO_MANY", 6],
    ],
    BAD_PROPERTY: [
      "BAD_TYPE",
      "BAD_LEN",
      "BAD_VALUE",
      "TOO_MANY",
      "DUP_TYPE",
      "BAD_EXPERIMENTER",
      "BAD_EXP_TYPE",
      "BAD_EXP_VALUE",
      "EPERM",
    ],
    ASYNC_CONFIG_FAILED: ["INVALID", "UNSUPPORTED", "EPERM"],
    FLOW_MONITOR_FAILED: [
      "UNKNOWN",
      "MONITOR_EXISTS",
      "INVALID_MONITOR",
      "UNKNOWN_MONITOR",
      "BAD_COMMAND",
      "BAD_FLAGS",
      "BAD_TABLE_ID",
      "BAD_OUT",
    ],
    BUNDLE_FAILED: [
      "UNKNOWN",
      "EPERM",
      "BAD_ID",
      "BUNDLE_EXIST",
      "BUNDLE_CLOSED",
      "OUT_OF_BUNDLES",
      "BAD_TYPE",
      "BAD_FLAGS",
      "MSG_BAD_LEN",
      "MSG_BAD_XID",
      "MSG_UNSUP",
      "MSG_CONFLICT",
      "MSG_TOO_MANY",
      "MSG_FAILED",
      "TIMEOUT",
      "BUNDLE_IN_PROGRESS",
      ["SCHED_NOT_SUPPORTED", 6],
      ["SCHED_FUTURE", 6],
      ["SCHED_PAST", 6],
    ],
  });

/** OFPR10 is the OpenFlow 1.0-1.3 PACKET_IN reason table (1.0 has the first two; 1.1 adds INVALID_TTL). */
export const OFPR10 = Object.freeze({ NO_MATCH: 0, ACTION: 1, INVALID_TTL: 2 } as const);

/** OFPR14 is the 1.4+ PACKET_IN reason table (OpenFlow 1.4.1 §7.4.1), which renames and extends it. */
export const OFPR14 = Object.freeze({
  TABLE_MISS: 0,
  APPLY_ACTION: 1,
  INVALID_TTL: 2,
  ACTION_SET: 3,
  GROUP: 4,
  PACKET_OUT: 5,
} as const);
