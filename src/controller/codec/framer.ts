/**
 * Framing, apart from decoding: the 16-bit ofp_header.length cuts a TCP byte stream into whole
 * messages, whatever the chunking (OpenFlow 1.3.5 §7.1: length includes the header). Two framers share
 * the length rule and its error: Framer hands out each frame as a copy of its own (listen mode, tools),
 * FrameScanner hands out runs of whole frames with as little copying as the stream allows (the relay,
 * which forwards the bytes it frames). Kept in one file so that they cannot drift apart.
 */
import { OpenFlowError } from "../../common/errors.js";
import { OFP_HEADER_LEN, OFP_MAX_LEN } from "./constants.js";

/** badLength is the error of a refused length field at stream byte `at` (both framers throw it). */
function badLength(length: number, at: number, maxLength: number): OpenFlowError {
  return new OpenFlowError(
    `OpenFlow header length ${length} at stream byte ${at} is ` +
      (length < OFP_HEADER_LEN
        ? `below the ${OFP_HEADER_LEN}-byte header size`
        : `above the accepted maximum ${maxLength}`) +
      ": the peer is not speaking OpenFlow or the stream is corrupt; close the connection",
    "bad-length",
    at,
  );
}

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
        this.failure = badLength(length, this.consumed + pos + 2, this.maxLength);
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

/**
 * FrameScanner cuts a byte stream into whole OpenFlow frames like Framer, with as little copying as
 * the stream allows: `scan` returns the bytes of the frames a chunk completes as at most two runs,
 * the frame completed from the tail carried over from the previous chunk (a copy of that one frame
 * only) and then a view of the chunk's whole frames; an incomplete tail is kept (copied) for the next
 * chunk. A run holds whole frames back to back: walk them with `frameEnd`. No array of offsets and no
 * copy of the whole chunk, so framing costs one pass over the headers.
 *
 * The views share the chunk's memory: a caller that reuses its read buffer must be done with a run
 * before the next read lands in it.
 *
 * A length below the 8-byte header is refused exactly as Framer refuses it (same OpenFlowError
 * "bad-length", same stream offset, same message): the whole frames before it are returned first,
 * `failure` is set, and the next scan throws the error, as does every scan after that. The field
 * cannot say more than 65535, so there is no upper bound to check (Framer's default).
 */
export class FrameScanner {
  private carry: Buffer | undefined;
  private offset = 0;
  private failed: OpenFlowError | undefined;
  /** interesting: frames in the last scan whose type `skip` does not mark (all frames without skip). */
  interesting = 0;

  /** failure is the error the next scan throws: the stream had a bad length after the frames returned. */
  get failure(): OpenFlowError | undefined {
    return this.failed;
  }

  /**
   * scan adds a chunk and returns the runs of whole frames it completes, in stream order. `skip`
   * (indexed by the header's type byte) marks the types `interesting` does not count.
   */
  scan(chunk: Buffer, skip?: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    this.interesting = 0;
    const runs: Buffer[] = [];
    let body = chunk;
    if (this.carry) {
      const carry = this.carry;
      // The carried frame's length, from the carry or (header split across chunks) the chunk's head.
      const hdr = carry.length >= 4 ? carry : Buffer.concat([carry, chunk.subarray(0, 4 - carry.length)]);
      if (hdr.length < 4) {
        this.carry = hdr;
        return runs;
      }
      const len = (hdr[2]! << 8) | hdr[3]!;
      if (len < OFP_HEADER_LEN) {
        this.carry = undefined;
        throw (this.failed = badLength(len, this.offset + 2, OFP_MAX_LEN));
      }
      const need = len - carry.length;
      if (chunk.length < need) {
        this.carry = Buffer.concat([carry, chunk]);
        return runs;
      }
      this.carry = undefined;
      const whole = Buffer.concat([carry, chunk.subarray(0, need)], len);
      if (!skip || !skip[whole[1]!]) this.interesting++;
      runs.push(whole);
      this.offset += len;
      body = chunk.subarray(need);
    }
    const n = body.length;
    let pos = 0;
    while (n - pos >= 4) {
      const len = (body[pos + 2]! << 8) | body[pos + 3]!;
      if (len < OFP_HEADER_LEN) {
        this.failed = badLength(len, this.offset + pos + 2, OFP_MAX_LEN);
        break;
      }
      if (n - pos < len) break;
      if (!skip || !skip[body[pos + 1]!]) this.interesting++;
      pos += len;
    }
    if (pos > 0) runs.push(pos === n ? body : body.subarray(0, pos));
    this.offset += pos;
    if (this.failed) {
      if (runs.length === 0) throw this.failed;
    } else if (pos < n) {
      this.carry = Buffer.from(body.subarray(pos));
    }
    return runs;
  }
}

/** frameEnd returns where the frame starting at `pos` of a FrameScanner run ends. */
export function frameEnd(run: Buffer, pos: number): number {
  return pos + ((run[pos + 2]! << 8) | run[pos + 3]!);
}
