/**
 * PORT_DESC over stats/multipart: OFPMP_PORT_DESC (OpenFlow 1.3.5 §7.3.5.7; 1.5 adds a port_no
 * filter, 1.5.1 §7.3.5.8) and Open vSwitch's OFPST_PORT_DESC (13) stats extension on 1.0, whose stats
 * header has no padding. Other stats/multipart types are left to `unknown`.
 */
import { OFPMP_PORT_DESC, OFP_VERSIONS } from "./constants.js";
import { decodePorts, encodePort } from "./port.js";
import type { Header, PortDescReply, PortDescRequest } from "./types.js";
import { PadReader, PadWriter, Reader, Writer } from "./wire.js";

/** MULTIPART_HEADER_LEN is the stats/multipart header after ofp_header: 4 bytes on 1.0, 8 on 1.1+. */
export function multipartHeaderLen(version: number): number {
  return version === OFP_VERSIONS["1.0"] ? 4 : 8;
}

function readMultipartHeader(r: Reader, h: Header, pads: PadReader): number {
  r.u16("multipart type");
  const flags = r.u16("multipart flags");
  if (h.version !== OFP_VERSIONS["1.0"]) pads.skip(r, 4, "multipart padding");
  return flags;
}

function writeMultipartHeader(w: Writer, version: number, flags: number, pads: PadWriter): void {
  w.u16(OFPMP_PORT_DESC).u16(flags);
  if (version !== OFP_VERSIONS["1.0"]) pads.write(4);
}

/** decodePortDescRequest reads a PORT_DESC request (empty body; port_no + padding on 1.5+). */
export function decodePortDescRequest(r: Reader, h: Header): PortDescRequest {
  const pads = new PadReader();
  const flags = readMultipartHeader(r, h, pads);
  const msg: PortDescRequest = { type: "port_desc_request", version: h.version, xid: h.xid, flags };
  if (h.version >= OFP_VERSIONS["1.5"]) {
    msg.portNo = r.u32("port_no");
    pads.skip(r, 4);
  }
  r.expectEnd();
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodePortDescRequest writes a PORT_DESC request for the message's version. */
export function encodePortDescRequest(w: Writer, msg: PortDescRequest): void {
  const pads = new PadWriter(w, msg.pad);
  writeMultipartHeader(w, msg.version, msg.flags, pads);
  if (msg.version >= OFP_VERSIONS["1.5"]) {
    w.u32(msg.portNo ?? 0xffffffff);
    pads.write(4);
  }
}

/** decodePortDescReply reads one PORT_DESC reply part: flags and the ports that fill the body. */
export function decodePortDescReply(r: Reader, h: Header): PortDescReply {
  const pads = new PadReader();
  const flags = readMultipartHeader(r, h, pads);
  const ports = decodePorts(r, h.version);
  const msg: PortDescReply = { type: "port_desc_reply", version: h.version, xid: h.xid, flags, ports };
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodePortDescReply writes one PORT_DESC reply part. */
export function encodePortDescReply(w: Writer, msg: PortDescReply): void {
  writeMultipartHeader(w, msg.version, msg.flags, new PadWriter(w, msg.pad));
  for (const p of msg.ports) encodePort(w, p, msg.version);
}
