/** HELLO (OpenFlow 1.3.5 §7.5.1): optional elements, the version bitmap being the one defined. */
import { OFPHET_VERSIONBITMAP } from "./constants.js";
import { readTlv, writeTlv } from "./props.js";
import type { Header, Hello, HelloElement } from "./types.js";
import { Reader, Writer } from "./wire.js";

/**
 * decodeHello reads the elements of a HELLO body. Unknown element types and unknown bitmap bits are
 * kept; fewer than 4 bytes left after the last element are kept as `trailing`. A version bitmap whose
 * length is not 4 + 4n, or an element running past the body, is an error.
 */
export function decodeHello(r: Reader, h: Header): Hello {
  const elements: HelloElement[] = [];
  while (r.remaining >= 4) {
    const tlv = readTlv(r, "hello element");
    const b = tlv.body;
    let el: HelloElement;
    if (tlv.tlvType === OFPHET_VERSIONBITMAP) {
      if (b.remaining % 4 !== 0) {
        b.fail("version bitmap length", `${b.remaining + 4} is not 4 + a multiple of 4`, tlv.at + 2);
      }
      const bitmaps: number[] = [];
      while (b.remaining > 0) bitmaps.push(b.u32("version bitmap"));
      el = { type: "versionbitmap", bitmaps };
    } else {
      el = { type: "unknown", elemType: tlv.tlvType, data: b.rest() };
    }
    if (tlv.pad !== undefined) el.pad = tlv.pad;
    elements.push(el);
  }
  const hello: Hello = { type: "hello", version: h.version, xid: h.xid, elements };
  if (r.remaining > 0) hello.trailing = r.rest();
  return hello;
}

/** encodeHello writes the elements (and kept trailing bytes) of a HELLO body. */
export function encodeHello(w: Writer, msg: Hello): void {
  for (const el of msg.elements) {
    if (el.type === "versionbitmap") {
      const body = new Writer(el.bitmaps.length * 4);
      for (const word of el.bitmaps) body.u32(word);
      writeTlv(w, OFPHET_VERSIONBITMAP, body.finish(), el.pad);
    } else {
      writeTlv(w, el.elemType, el.data, el.pad);
    }
  }
  if (msg.trailing) w.bytes(msg.trailing);
}
