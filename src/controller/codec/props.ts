/**
 * TLV properties and HELLO elements: a 4-byte {type, length} header whose length excludes the
 * padding to a multiple of 8 that follows (OpenFlow 1.4.1 §7.2.1.1, §7.5.1; 1.3.5 §7.5.1).
 * Padding that is not the canonical zeros (short, missing, non-zero) is kept for re-encoding.
 */
import { Reader, Writer } from "./wire.js";

/** RawTlv is one TLV as read: its type, body after the header, and non-canonical padding if any. */
export interface RawTlv {
  tlvType: number;
  /** Frame offset of the TLV header (for errors). */
  at: number;
  /** A Reader over the body (length - 4 bytes). */
  body: Reader;
  pad?: Uint8Array;
}

/** padLength is the canonical padding after a TLV of `length` bytes. */
export function padLength(length: number): number {
  return (8 - (length % 8)) % 8;
}

/**
 * readTlv reads one TLV header, body and its padding. The padding is taken when the canonical
 * number of zero bytes follows, or when the list ends within it (kept as non-canonical padding);
 * otherwise the TLV is taken as unpadded (pad = empty) and the next TLV starts right after it.
 */
export function readTlv(r: Reader, what: string): RawTlv {
  const at = r.offset;
  const tlvType = r.u16(`${what} type`);
  const length = r.u16(`${what} length`);
  if (length < 4) r.fail(`${what} length`, `${length} is below the 4-byte ${what} header`, at + 2);
  if (length - 4 > r.remaining) {
    r.need(length - 4, `${what} body (length ${length})`);
  }
  const body = r.sub(length - 4, `${what} body`);
  const want = padLength(length);
  const avail = Math.min(want, r.remaining);
  const next = r.view(avail, `${what} padding`);
  const allZero = next.every((b) => b === 0);
  if (allZero && avail === want) return { tlvType, at, body };
  // At the end of the list whatever follows (short, missing or non-zero) is this TLV's padding.
  if (r.remaining === 0) return { tlvType, at, body, pad: new Uint8Array(next) };
  // Non-zero bytes where padding belongs, with more after: the next TLV starts here (unpadded).
  r.rewind(avail);
  return { tlvType, at, body, pad: new Uint8Array(0) };
}

/** writeTlv writes a TLV header, its body and its padding (kept `pad`, else canonical zeros). */
export function writeTlv(w: Writer, tlvType: number, body: Uint8Array, pad: Uint8Array | undefined): void {
  const length = 4 + body.length;
  w.u16(tlvType).u16(length).bytes(body);
  if (pad !== undefined) w.bytes(pad);
  else w.zeros(padLength(length));
}
