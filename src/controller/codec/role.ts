/**
 * Controller roles: ROLE_REQUEST/REPLY (OpenFlow 1.2+, 1.3.5 §7.3.9), ROLE_STATUS (1.4+, 1.4.1
 * §7.4.4) and Nicira's NXT_ROLE_REQUEST/REPLY vendor messages for 1.0 (OVS nicira-ext.h:
 * nicira_header {vendor 0x2320, subtype} then nx_role_request {role}).
 */
import { NX_VENDOR_ID } from "./constants.js";
import { readTlv, writeTlv } from "./props.js";
import type {
  Header,
  NxRoleReply,
  NxRoleRequest,
  Property,
  RoleReply,
  RoleRequest,
  RoleStatus,
} from "./types.js";
import { PadReader, PadWriter, Reader, Writer } from "./wire.js";

/** decodeRole reads ofp_role_request / ofp_role_reply (same layout). */
export function decodeRole(
  type: "role_request" | "role_reply",
  r: Reader,
  h: Header,
): RoleRequest | RoleReply {
  const role = r.u32("role");
  const pads = new PadReader();
  pads.skip(r, 4);
  const generationId = r.u64("generation_id");
  r.expectEnd();
  const msg: RoleRequest | RoleReply = { type, version: h.version, xid: h.xid, role, generationId };
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodeRole writes ofp_role_request / ofp_role_reply. */
export function encodeRole(w: Writer, msg: RoleRequest | RoleReply): void {
  w.u32(msg.role);
  new PadWriter(w, msg.pad).write(4);
  w.u64(msg.generationId);
}

/** decodeRoleStatus reads ofp_role_status and its properties (kept as bytes). */
export function decodeRoleStatus(r: Reader, h: Header): RoleStatus {
  const role = r.u32("role");
  const reason = r.u8("reason");
  const pads = new PadReader();
  pads.skip(r, 3);
  const generationId = r.u64("generation_id");
  const properties: Property[] = [];
  while (r.remaining > 0) {
    const tlv = readTlv(r, "role property");
    const p: Property = { propType: tlv.tlvType, data: tlv.body.rest() };
    if (tlv.pad !== undefined) p.pad = tlv.pad;
    properties.push(p);
  }
  const msg: RoleStatus = {
    type: "role_status",
    version: h.version,
    xid: h.xid,
    role,
    reason,
    generationId,
    properties,
  };
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodeRoleStatus writes ofp_role_status. */
export function encodeRoleStatus(w: Writer, msg: RoleStatus): void {
  w.u32(msg.role).u8(msg.reason);
  new PadWriter(w, msg.pad).write(3);
  w.u64(msg.generationId);
  for (const p of msg.properties) writeTlv(w, p.propType, p.data, p.pad);
}

/** decodeNxRole reads a Nicira role request/reply body (vendor and subtype already checked). */
export function decodeNxRole(
  type: "nx_role_request" | "nx_role_reply",
  r: Reader,
  h: Header,
): NxRoleRequest | NxRoleReply {
  r.u32("vendor");
  r.u32("subtype");
  const role = r.u32("role");
  r.expectEnd();
  return { type, version: h.version, xid: h.xid, role };
}

/** encodeNxRole writes the Nicira header and role. */
export function encodeNxRole(w: Writer, subtype: number, msg: NxRoleRequest | NxRoleReply): void {
  w.u32(NX_VENDOR_ID).u32(subtype).u32(msg.role);
}
