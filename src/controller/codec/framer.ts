/**
 * Framing is its own layer (STYLE 4): the 16-bit ofp_header.length cuts a TCP byte stream into
 * whole messages, whatever the chunking (OpenFlow 1.3.5 §7.1: length includes the header).
 */
import { OpenFlowError } from "../../common/errors.js";
import { OFP_HEADER_LEN, OFP_MAX_LEN } from "./constants.js";

/** FramerOptions bounds what the framer accepts. */
export interface FramerOptions {
  /** Largest message length accepted (8..65535; default 65535, the most the field can say). */
  maxLength?: number;
}

/**
 * Framer turns chunks of a byte stream into whole OpenFlow frames. Partial data is kept until the
 * rest arrives. A bad length (< 8 or > maxLength) throws OpenFlowError "bad-length" with the stream
 * offset of the length field; whole frames that came before it in the same chunk are returned
 * first and the error is thrown by the next push. The stream cannot be resynchronised after that,
 * so every later push throws the same error.
 */
export class Framer {
  private readonly maxLength: number;
  private buffered: Buffer = Buffer.alloc(0);
  /** Stream offset of the first byte of `buffered`. */
  private consumed = 0;
  private failure: OpenFlowError | undefined;
  private failedAt: Buffer | undefined;

  constructor(options: FramerOptions = {}) {
    const max = options.maxLength ?? OFP_MAX_LEN;
    if (!Number.isInteger(max) || max < OFP_HEADER_LEN || max > OFP_MAX_LEN) {
      throw new OpenFlowError(
        `Framer maxLength ${max} is out of range: use an integer from ${OFP_HEADER_LEN} to ${OFP_MAX_LEN}`,
        "bad-length",
      );
    }
    this.maxLength = max;
  }

  /** pending is the number of bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.buffered.length;
  }

  /**
   * badHeader is the start of the frame whose length was refused (up to its first 8 bytes, fewer when the
   * stream ended there), or undefined. The controller echoes it in its OFPBRC_BAD_LEN error (OpenFlow 1.3.5
   * §7.5.4: the data of an ERROR holds the start of the offending message).
   */
  get badHeader(): Buffer | undefined {
    return this.failedAt;
  }

  /** offset is the stream offset of the next byte to be framed. */
  get offset(): number {
    return this.consumed;
  }

  /** push adds a chunk and returns every frame it completes, in order (each a copy it owns). */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failure) throw this.failure;
    const data =
      this.buffered.length === 0
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.concat([this.buffered, chunk]);
    const frames: Buffer[] = [];
    let pos = 0;
    while (data.length - pos >= 4) {
      const length = data.readUInt16BE(pos + 2);
      if (length < OFP_HEADER_LEN || length > this.maxLength) {
        this.failure = new OpenFlowError(
          `OpenFlow header length ${length} at stream byte ${this.consumed + pos + 2} is ` +
            (length < OFP_HEADER_LEN
              ? `below the ${OFP_HEADER_LEN}-byte header size`
              : `above the accepted maximum ${this.maxLength}`) +
            ": the peer is not speaking OpenFlow or the stream is corrupt; close the connection",
          "bad-length",
          this.consumed + pos + 2,
        );
        this.failedAt = Buffer.from(data.subarray(pos, pos + OFP_HEADER_LEN));
        break;
      }
      if (data.length - pos < length) break;
      frames.push(Buffer.from(data.subarray(pos, pos + length)));
      pos += length;
    }
    this.consumed += pos;
    // Copy the remainder: the caller may reuse its chunk buffer.
    this.buffered = Buffer.from(data.subarray(pos));
    // Whole frames before a bad header are still delivered; the error comes with the next push.
    if (this.failure && frames.length === 0) throw this.failure;
    return frames;
  }
}
