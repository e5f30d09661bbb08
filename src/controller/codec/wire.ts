/**
 * Bounded big-endian reading and growable writing for the codec. The Reader never lets a
 * RangeError escape: every short read becomes OpenFlowError "truncated" naming the field and the
 * frame offset of the byte that was missing.
 */
import { OpenFlowError } from "../../common/errors.js";

/** Reader reads big-endian fields from a frame; offsets in errors are relative to the frame start. */
export class Reader {
  private pos: number;

  /**
   * @param buf the whole frame
   * @param what the structure being decoded, for error messages ("FEATURES_REPLY")
   * @param start first byte to read; @param end one past the last readable byte
   */
  constructor(
    private readonly buf: Uint8Array,
    readonly what: string,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  /** offset is the frame offset of the next byte. */
  get offset(): number {
    return this.pos;
  }

  /** remaining is the number of bytes left before `end`. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** need throws "truncated" unless n bytes remain for `field`. */
  need(n: number, field: string): void {
    if (this.end - this.pos < n) {
      throw new OpenFlowError(
        `${this.what}: ${field} needs ${n} byte(s) at offset ${this.pos} but only ${this.end - this.pos} remain`,
        "truncated",
        this.pos,
      );
    }
  }

  /** fail throws a "bad-field" error at a given frame offset. */
  fail(field: string, problem: string, at: number = this.pos): never {
    throw new OpenFlowError(`${this.what}: ${field} at offset ${at}: ${problem}`, "bad-field", at);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const b = this.buf;
    const p = this.pos;
    const v = b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const hi = BigInt(this.u32(field));
    const lo = BigInt(this.u32(field));
    return (hi << 32n) | lo;
  }

  /** bytes returns a copy of the next n bytes (a plain Uint8Array that does not pin the frame). */
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    // A fresh plain Uint8Array: Buffer#slice would return a view, and subclasses would leak into the model.
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** rest returns a copy of everything up to `end`. */
  rest(): Uint8Array {
    return this.bytes(this.remaining, "body");
  }

  /** view returns the next n bytes without copying. */
  view(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** rewind steps back n bytes (only over bytes this reader has just read). */
  rewind(n: number): void {
    this.pos -= n;
  }

  /** sub returns a Reader over the next n bytes (same frame offsets) and skips them here. */
  sub(n: number, field: string, what: string = this.what): Reader {
    this.need(n, field);
    const r = new Reader(this.buf, what, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  /** expectEnd throws "trailing-bytes" if anything is left before `end`. */
  expectEnd(): void {
    if (this.pos !== this.end) {
      throw new OpenFlowError(
        `${this.what}: ${this.end - this.pos} unexpected trailing byte(s) at offset ${this.pos}`,
        "trailing-bytes",
        this.pos,
      );
    }
  }
}

/** Writer builds a big-endian byte string, growing as needed. */
export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(size = 64) {
    this.buf = Buffer.alloc(size);
  }

  /** length is the number of bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64BE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** zeros writes n zero bytes. */
  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }

  /** patchU16 overwrites a 16-bit field written earlier (lengths known only at the end). */
  patchU16(at: number, v: number): this {
    this.buf.writeUInt16BE(v & 0xffff, at);
    return this;
  }

  /** finish returns the bytes written (a Buffer of exactly `length` bytes). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * PadReader collects the padding bytes of one structure, in wire order, so that non-zero padding
 * can be kept for a byte-identical re-encode (it is dropped when all zero, the canonical case).
 */
export class PadReader {
  private readonly parts: Uint8Array[] = [];
  private nonZero = false;

  /** skip reads n padding bytes from r. */
  skip(r: Reader, n: number, field = "padding"): void {
    const b = r.view(n, field);
    if (!this.nonZero && b.some((x) => x !== 0)) this.nonZero = true;
    this.parts.push(b);
  }

  /** result is the concatenated padding when any byte was non-zero, else undefined. */
  result(): Uint8Array | undefined {
    if (!this.nonZero) return undefined;
    const total = this.parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** PadWriter writes padding from a kept `pad` value (or zeros), consuming it in wire order. */
export class PadWriter {
  private at = 0;

  constructor(
    private readonly w: Writer,
    private readonly pad: Uint8Array | undefined,
  ) {}

  /** write emits n padding bytes: the next n kept bytes, zero-filled when the kept value runs out. */
  write(n: number): void {
    const src = this.pad;
    for (let i = 0; i < n; i++)
      this.w.u8(src !== undefined && this.at + i < src.length ? src[this.at + i]! : 0);
    this.at += n;
  }
}

/** withPad adds `pad` to an object only when defined (keeps canonical messages free of the key). */
export function withPad<T extends object>(obj: T, pad: Uint8Array | undefined): T & { pad?: Uint8Array } {
  return pad === undefined ? obj : { ...obj, pad };
}

/** macString renders 6 bytes as "aa:bb:cc:dd:ee:ff". */
export function macString(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (i ? ":" : "") + b[i]!.toString(16).padStart(2, "0");
  return s;
}

/** macBytes parses "aa:bb:cc:dd:ee:ff" (or 12 bare hex digits); throws OpenFlowError on anything else. */
export function macBytes(mac: string): Uint8Array {
  const hex = mac.replaceAll(":", "").replaceAll("-", "");
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) {
    throw new OpenFlowError(
      `hwAddr ${JSON.stringify(mac)} is not a MAC address like aa:bb:cc:dd:ee:ff`,
      "bad-field",
    );
  }
  return Uint8Array.from(Buffer.from(hex, "hex"));
}
