/** ERROR (OpenFlow 1.3.5 §7.5.4), including the 1.2+ experimenter error (type 0xffff, §7.5.4.2). */
import { OFPET_EXPERIMENTER, OFP_VERSIONS } from "./constants.js";
import type { ErrorMsg, Header } from "./types.js";
import { Reader, Writer } from "./wire.js";

/** decodeError reads type, code (or exp_type + experimenter) and the data. */
export function decodeError(r: Reader, h: Header): ErrorMsg {
  const errType = r.u16("error type");
  const code = r.u16(errType === OFPET_EXPERIMENTER ? "error exp_type" : "error code");
  if (errType === OFPET_EXPERIMENTER && h.version >= OFP_VERSIONS["1.2"]) {
    const experimenter = r.u32("error experimenter");
    return { type: "error", version: h.version, xid: h.xid, errType, code, experimenter, data: r.rest() };
  }
  return { type: "error", version: h.version, xid: h.xid, errType, code, data: r.rest() };
}

/** encodeError writes an ERROR body; `experimenter` is written only for type 0xffff on 1.2+. */
export function encodeError(w: Writer, msg: ErrorMsg): void {
  w.u16(msg.errType).u16(msg.code);
  if (msg.errType === OFPET_EXPERIMENTER && msg.version >= OFP_VERSIONS["1.2"]) w.u32(msg.experimenter ?? 0);
  w.bytes(msg.data);
}
