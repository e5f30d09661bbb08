/** HELLO (OpenFlow 1.3.5 §7.5.1): optional elements, the version bitmap being the one defined. */
import { OpenFlowError } from "../../common/errors.js";
import { OFPHET_VERSIONBITMAP } from "./constants.js";
import { readTlv, writeTlv } from "./props.js";
import type { Header, Hello, HelloElement } from "./types.js";
import { Reader, Writer } from "./wire.js";

/**
 * decodeHello reads the elements of a HELLO body. Unknown element types and unknown bitmap bits are
 * kept; fewer than 4 bytes left after the last element are kept as `trailing`. A version bitmap whose
 * length is not 4 + 4n, or an element running past the body, is an error; when `lenient`, it ends the
 * element list instead: the bytes from that element on become `trailing` and `problem` says why (the
 * message still re-encodes byte for byte). Receivers may do that too: OpenFlow 1.3.5 §7.5.1 has a
 * peer fall back to the header version when it cannot use the elements.
 */
export function decodeHello(r: Reader, h: Header, lenient = false): Hello {
  const elements: HelloElement[] = [];
  let problem: string | undefined;
  while (r.remaining >= 4) {
    const start = r.offset;
    let el: HelloElement;
    try {
      el = decodeElement(r);
    } catch (err) {
      if (!lenient || !(err instanceof OpenFlowError)) throw err;
      r.rewind(r.offset - start);
      problem = err.message;
      break;
    }
    elements.push(el);
  }
  const hello: Hello = { type: "hello", version: h.version, xid: h.xid, elements };
  if (r.remaining > 0) hello.trailing = r.rest();
  if (problem !== undefined) hello.problem = problem;
  return hello;
}

/** decodeElement reads one element: a version bitmap, or any other type kept as bytes. */
function decodeElement(r: Reader): HelloElement {
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
  return el;
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
