/** PORT_STATUS (OpenFlow 1.3.5 §7.4.3): a reason, 7 bytes of padding and one port description. */
import { decodePort, encodePort } from "./port.js";
import type { Header, PortStatus } from "./types.js";
import { PadReader, PadWriter, Reader, Writer } from "./wire.js";

/** decodePortStatus reads the reason and the port; the port must fill the rest of the body. */
export function decodePortStatus(r: Reader, h: Header): PortStatus {
  const reason = r.u8("reason");
  const pads = new PadReader();
  pads.skip(r, 7);
  const port = decodePort(r, h.version);
  r.expectEnd();
  const msg: PortStatus = { type: "port_status", version: h.version, xid: h.xid, reason, port };
  const pad = pads.result();
  if (pad) msg.pad = pad;
  return msg;
}

/** encodePortStatus writes the reason, padding and port. */
export function encodePortStatus(w: Writer, msg: PortStatus): void {
  w.u8(msg.reason);
  new PadWriter(w, msg.pad).write(7);
  encodePort(w, msg.port, msg.version);
}
