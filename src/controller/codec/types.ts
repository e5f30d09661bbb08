/**
 * The decoded OpenFlow message model: a tagged union on a literal `type`, so that a `switch` on it
 * narrows each message to its own fields and an unhandled tag is a compile error.
 *
 * Every message carries the wire `version` byte (1..6 for OpenFlow 1.0..1.5) and the `xid`.
 * Fields named `pad` or `raw*` exist only so that a decoded message re-encodes byte for byte:
 * they are present only when the wire held something other than the canonical encoding
 * (non-zero padding, a port name that is not NUL-padded UTF-8). Builders never set them.
 */

/** MessageType is the literal tag of every decoded OpenFlow message. */
export type MessageType = OfMessage["type"];

/** Header is what every message carries: the wire version byte and the transaction id. */
export interface Header {
  /** Wire version byte: 0x01 = OpenFlow 1.0 .. 0x06 = OpenFlow 1.5 (other values only in HELLO/unknown). */
  version: number;
  /** Transaction id (32-bit unsigned). */
  xid: number;
}

/** HelloElement is one element of a HELLO body (OpenFlow 1.3.5 §7.5.1). */
export type HelloElement = HelloVersionBitmap | HelloUnknownElement;

/** HelloVersionBitmap is OFPHET_VERSIONBITMAP: bit n of word i set = wire version 32*i+n supported. */
export interface HelloVersionBitmap {
  type: "versionbitmap";
  /** The 32-bit bitmap words exactly as on the wire (unknown bits kept). */
  bitmaps: number[];
  /** The padding that followed the element, only when not the canonical zeros to a multiple of 8. */
  pad?: Uint8Array;
}

/** HelloUnknownElement is any element type this codec does not interpret; kept verbatim. */
export interface HelloUnknownElement {
  type: "unknown";
  /** The element type number. */
  elemType: number;
  /** The element body after its 4-byte header (the length field excludes padding). */
  data: Uint8Array;
  /** The padding that followed the element, only when not the canonical zeros to a multiple of 8. */
  pad?: Uint8Array;
}

/** Hello is OFPT_HELLO; `elements` is empty for a bare 8-byte HELLO. */
export interface Hello extends Header {
  type: "hello";
  elements: HelloElement[];
  /** Bytes after the last whole element that do not form an element (kept, never interpreted). */
  trailing?: Uint8Array;
  /**
   * Set only by a lenient decode: why the element list stopped being decoded. `trailing` then holds
   * the bytes from the element that failed to the end of the message.
   */
  problem?: string;
}

/** ErrorMsg is OFPT_ERROR; for the experimenter error (errType 0xffff, 1.2+) `code` is exp_type. */
export interface ErrorMsg extends Header {
  type: "error";
  /** ofp_error_type (e.g. 0 = OFPET_HELLO_FAILED). */
  errType: number;
  /** The error code, or the experimenter-defined exp_type when errType is 0xffff on 1.2+. */
  code: number;
  /** Experimenter id, present only for the experimenter error (errType 0xffff, OpenFlow 1.2+). */
  experimenter?: number;
  /** Data: the offending request (or its first 64 bytes) or ASCII text for HELLO_FAILED. */
  data: Uint8Array;
}

/** EchoRequest is OFPT_ECHO_REQUEST with its arbitrary payload. */
export interface EchoRequest extends Header {
  type: "echo_request";
  data: Uint8Array;
}

/** EchoReply is OFPT_ECHO_REPLY; the payload echoes the request's. */
export interface EchoReply extends Header {
  type: "echo_reply";
  data: Uint8Array;
}

/** FeaturesRequest is OFPT_FEATURES_REQUEST (header only). */
export interface FeaturesRequest extends Header {
  type: "features_request";
}

/** FeaturesReply is OFPT_FEATURES_REPLY (ofp_switch_features). */
export interface FeaturesReply extends Header {
  type: "features_reply";
  /** The 64-bit datapath id (never a number: it exceeds 2^53). */
  datapathId: bigint;
  nBuffers: number;
  nTables: number;
  /** Auxiliary connection id (OpenFlow 1.3+); 0 is the main connection. */
  auxiliaryId?: number;
  capabilities: number;
  /** Supported actions bitmap (OpenFlow 1.0 only). */
  actions?: number;
  /** The reserved word that replaced `actions` (OpenFlow 1.1+). */
  reserved?: number;
  /** The switch's ports (OpenFlow 1.0-1.2 only; 1.3+ uses PORT_DESC). */
  ports?: Port[];
  /** Non-zero padding bytes of the fixed part, in wire order. */
  pad?: Uint8Array;
}

/** PortProp is one OpenFlow 1.4+ port description property (OpenFlow 1.4.1 §7.2.1.1). */
export type PortProp = PortPropEthernet | PortPropOther;

/** PortPropEthernet is OFPPDPT_ETHERNET: the feature bitmaps and speeds in kbps. */
export interface PortPropEthernet {
  type: "ethernet";
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  currSpeed: number;
  maxSpeed: number;
  /** Non-zero padding bytes, in wire order. */
  pad?: Uint8Array;
}

/** PortPropOther is any other property (optical, experimenter, unknown), kept as bytes. */
export interface PortPropOther {
  type: "other";
  /** The property type number (1 = optical, 0xffff = experimenter, ...). */
  propType: number;
  /** The property body after its 4-byte header, as counted by its length field. */
  data: Uint8Array;
  /** The padding that followed the property, only when not the canonical zeros to a multiple of 8. */
  pad?: Uint8Array;
}

/** Property is a generic TLV property (ROLE_STATUS properties); kept as bytes. */
export interface Property {
  propType: number;
  data: Uint8Array;
  /** The padding that followed the property, only when not the canonical zeros to a multiple of 8. */
  pad?: Uint8Array;
}

/**
 * Port is one switch port: ofp_phy_port (1.0, 48 bytes), ofp_port (1.1-1.3, 64 bytes) or the
 * property-based ofp_port (1.4+). On 1.4+ `properties` is what goes on the wire; the feature
 * fields are copied from its ethernet property for convenience (0 when there is none).
 */
export interface Port {
  /** Port number: 16-bit on OpenFlow 1.0, 32-bit on 1.1+. */
  portNo: number;
  /** Hardware address, lower-case "aa:bb:cc:dd:ee:ff". */
  hwAddr: string;
  /** Interface name (NUL-terminated UTF-8 on the wire, at most 16 bytes). */
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  /** Current speed in kbps (1.1+). */
  currSpeed?: number;
  /** Maximum speed in kbps (1.1+). */
  maxSpeed?: number;
  /** OpenFlow 1.4+ properties, kept in wire order (unknown ones as bytes). */
  properties?: PortProp[];
  /** The 16 name bytes, only when they are not the canonical NUL-padded UTF-8 of `name`. */
  rawName?: Uint8Array;
  /** Non-zero padding bytes of the fixed part, in wire order. */
  pad?: Uint8Array;
}

/** PortStatus is OFPT_PORT_STATUS: reason 0 = add, 1 = delete, 2 = modify. */
export interface PortStatus extends Header {
  type: "port_status";
  reason: number;
  port: Port;
  pad?: Uint8Array;
}

/** PortDescRequest is the multipart (1.3+) or stats (1.0, OVS extension) PORT_DESC request. */
export interface PortDescRequest extends Header {
  type: "port_desc_request";
  /** Request flags (OFPMPF_REQ_MORE = 1). */
  flags: number;
  /** Port filter (OpenFlow 1.5+ only; OFPP_ANY = 0xffffffff for all ports). */
  portNo?: number;
  pad?: Uint8Array;
}

/** PortDescReply is one part of a PORT_DESC reply; `flags & 1` (REPLY_MORE) means more parts follow. */
export interface PortDescReply extends Header {
  type: "port_desc_reply";
  flags: number;
  ports: Port[];
  pad?: Uint8Array;
}

/** RoleRequest is OFPT_ROLE_REQUEST (1.2+): role 0 nochange, 1 equal, 2 master, 3 slave. */
export interface RoleRequest extends Header {
  type: "role_request";
  role: number;
  generationId: bigint;
  pad?: Uint8Array;
}

/** RoleReply is OFPT_ROLE_REPLY (1.2+). */
export interface RoleReply extends Header {
  type: "role_reply";
  role: number;
  generationId: bigint;
  pad?: Uint8Array;
}

/** RoleStatus is OFPT_ROLE_STATUS (1.4+): reason 0 master request, 1 config, 2 experimenter. */
export interface RoleStatus extends Header {
  type: "role_status";
  role: number;
  reason: number;
  generationId: bigint;
  properties: Property[];
  pad?: Uint8Array;
}

/** NxRoleRequest is Nicira's NXT_ROLE_REQUEST (OpenFlow 1.0 vendor 0x2320, subtype 10): 0 other, 1 master, 2 slave. */
export interface NxRoleRequest extends Header {
  type: "nx_role_request";
  role: number;
}

/** NxRoleReply is Nicira's NXT_ROLE_REPLY (subtype 11). */
export interface NxRoleReply extends Header {
  type: "nx_role_reply";
  role: number;
}

/** BarrierRequest is OFPT_BARRIER_REQUEST (header only). */
export interface BarrierRequest extends Header {
  type: "barrier_request";
}

/** BarrierReply is OFPT_BARRIER_REPLY (header only). */
export interface BarrierReply extends Header {
  type: "barrier_reply";
}

/** UnknownMessage is every other message: the wire type number and the body after the header, verbatim. */
export interface UnknownMessage extends Header {
  type: "unknown";
  msgType: number;
  body: Uint8Array;
}

/** OfMessage is every message the codec decodes or encodes. */
export type OfMessage =
  | Hello
  | ErrorMsg
  | EchoRequest
  | EchoReply
  | FeaturesRequest
  | FeaturesReply
  | PortStatus
  | PortDescRequest
  | PortDescReply
  | RoleRequest
  | RoleReply
  | RoleStatus
  | NxRoleRequest
  | NxRoleReply
  | BarrierRequest
  | BarrierReply
  | UnknownMessage;

/** MessageOf picks the member of OfMessage with tag T. */
export type MessageOf<T extends MessageType> = Extract<OfMessage, { type: T }>;
