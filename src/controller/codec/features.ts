/**
 * FEATURES_REPLY (ofp_switch_features): 1.0 (OpenFlow 1.0.0 §5.3.1) and 1.1-1.2 carry the port list;
 * 1.3+ (1.3.5 §7.3.1) drops it and adds auxiliary_id.
 */
import { OFP_VERSIONS } from "./constants.js";
import { decodePorts, encodePort } from "./port.js";
import type { FeaturesReply, Header } from "./types.js";
import { PadReader, PadWriter, Reader, Writer } from "./wire.js";

/** decodeFeaturesReply reads the fixed part and, before 1.3, the ports up to the end of the body. */
export function decodeFeaturesReply(r: Reader, h: Header): FeaturesReply {
  const pads = new PadReader();
  const datapathId = r.u64("datapath_id");
  const nBuffers = r.u32("n_buffers");
  const nTables = r.u8("n_tables");
  const msg: FeaturesReply = {
    type: "features_reply",
    version: h.version,
    xid: h.xid,
    datapathId,
    nBuffers,
    nTables,
    capabilities: 0,
  };
  if (h.version >= OFP_VERSIONS["1.3"]) {
    msg.auxiliaryId = r.u8("auxiliary_id");
    pads.skip(r, 2);
  } else {
    pads.skip(r, 3);
  }
  msg.capabilities = r.u32("capabilities");
  if (h.version === OFP_VERSIONS["1.0"]) msg.actions = r.u32("actions");
  else msg.reserved = r.u32("reserved");
  if (h.version < OFP_VERSIONS["1.3"]) msg.ports = decodePorts(r, h.version);
  r.expectEnd();
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodeFeaturesReply writes ofp_switch_features for the message's version. */
export function encodeFeaturesReply(w: Writer, msg: FeaturesReply): void {
  const pads = new PadWriter(w, msg.pad);
  w.u64(msg.datapathId).u32(msg.nBuffers).u8(msg.nTables);
  if (msg.version >= OFP_VERSIONS["1.3"]) {
    w.u8(msg.auxiliaryId ?? 0);
    pads.write(2);
  } else {
    pads.write(3);
  }
  w.u32(msg.capabilities);
  w.u32((msg.version === OFP_VERSIONS["1.0"] ? msg.actions : msg.reserved) ?? 0);
  if (msg.version < OFP_VERSIONS["1.3"]) for (const p of msg.ports ?? []) encodePort(w, p, msg.version);
}
