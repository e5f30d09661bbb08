/**
 * FrameScanner, the relay's framer, held to Framer: every Ryu vector and every TCP direction of the
 * real-switch captures, split at every offset, gives the same frames through both, and bad lengths
 * give the same typed error (code, stream offset, message) at the same point of the stream. Its own
 * promises too: at most two runs per chunk, whole frames back to back, the `interesting` count.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { Framer, FrameScanner, frameEnd } from "../../../../src/controller/codec/framer.js";
import { OpenFlowError } from "../../../../src/common/errors.js";
import { readCapture, reassembleTcp } from "../../../helpers/pcap.js";
import { packetIn } from "../fake-peers.js";
import { captureFiles, vectorFiles } from "./vectors.js";

/** Outcome is what a framer made of a stream: the frames in order, and the error that ended it. */
interface Outcome {
  frames: Buffer[];
  /** Frames returned by the push/scan of each chunk (where the stream was cut matters to the relay). */
  perChunk: number[];
  error?: { code: string; offset: number | undefined; message: string };
  /** Bytes neither returned as frames nor refused. */
  leftover: number;
}

function errorOf(err: unknown): Outcome["error"] {
  if (!(err instanceof OpenFlowError)) throw err;
  return { code: err.code, offset: err.offset, message: err.message };
}

/** viaFramer pushes the chunks and then an empty one (which surfaces an error deferred by the last). */
function viaFramer(chunks: readonly Buffer[]): Outcome {
  const f = new Framer();
  const out: Outcome = { frames: [], perChunk: [], leftover: 0 };
  try {
    for (const c of [...chunks, Buffer.alloc(0)]) {
      const got = f.push(c);
      out.frames.push(...got);
      out.perChunk.push(got.length);
    }
  } catch (err) {
    out.error = errorOf(err);
  }
  out.leftover = f.pending;
  return out;
}

/** viaScanner is viaFramer through a FrameScanner, walking each run with frameEnd. */
function viaScanner(chunks: readonly Buffer[]): Outcome {
  const sc = new FrameScanner();
  const out: Outcome = { frames: [], perChunk: [], leftover: 0 };
  let bytes = 0;
  try {
    for (const c of [...chunks, Buffer.alloc(0)]) {
      const runs = sc.scan(c);
      if (runs.length > 2) expect.fail(`${runs.length} runs from one chunk`);
      let n = 0;
      for (const run of runs) {
        for (let p = 0; p < run.length; p = frameEnd(run, p)) {
          out.frames.push(run.subarray(p, frameEnd(run, p)));
          n++;
        }
      }
      out.perChunk.push(n);
    }
  } catch (err) {
    out.error = errorOf(err);
  }
  for (const c of chunks) bytes += c.length;
  const framed = out.frames.reduce((s, b) => s + b.length, 0);
  // Without an error every byte is framed or still carried; with one the rest of the stream is refused.
  out.leftover = out.error ? 0 : bytes - framed;
  return out;
}

/**
 * expectSame compares two outcomes. Plain comparisons first, and expect only on a difference: this
 * runs at every offset of a 94 KB stream.
 */
function expectSame(framer: Outcome, scanner: Outcome, what: string): void {
  const same =
    scanner.error?.code === framer.error?.code &&
    scanner.error?.offset === framer.error?.offset &&
    scanner.error?.message === framer.error?.message &&
    (framer.error !== undefined || scanner.leftover === framer.leftover) &&
    scanner.perChunk.length === framer.perChunk.length &&
    scanner.perChunk.every((n, i) => n === framer.perChunk[i]) &&
    scanner.frames.length === framer.frames.length &&
    framer.frames.every((f, i) => f.equals(scanner.frames[i]!));
  if (same) return;
  expect(scanner.error, `${what}: error`).toEqual(framer.error);
  expect(scanner.perChunk, `${what}: frames per chunk`).toEqual(framer.perChunk);
  expect(scanner.leftover, `${what}: leftover`).toBe(framer.leftover);
  expect(
    scanner.frames.map((f) => f.toString("hex")),
    `${what}: frames`,
  ).toEqual(framer.frames.map((f) => f.toString("hex")));
}

/** expectSameAtEveryCut cuts `stream` in two at every offset (and feeds it byte by byte). */
function expectSameAtEveryCut(stream: Buffer, what: string): Outcome {
  const whole = viaFramer([stream]);
  expectSame(whole, viaScanner([stream]), `${what} whole`);
  for (let cut = 0; cut <= stream.length; cut++) {
    const chunks = [stream.subarray(0, cut), stream.subarray(cut)];
    expectSame(viaFramer(chunks), viaScanner(chunks), `${what} cut at ${cut}`);
  }
  if (stream.length <= 4096) {
    const bytewise = [...stream].map((b) => Buffer.of(b));
    expectSame(viaFramer(bytewise), viaScanner(bytewise), `${what} byte by byte`);
  }
  return whole;
}

/** h builds bytes from hex strings (spaces ignored). */
function h(...hex: string[]): Buffer {
  return Buffer.from(hex.join("").replace(/\s+/g, ""), "hex");
}

describe("FrameScanner frames like Framer", () => {
  const vectors = vectorFiles();

  it("every Ryu vector file, split at every offset and byte by byte", () => {
    expect(vectors.length).toBeGreaterThan(300);
    let frames = 0;
    let errors = 0;
    for (const v of vectors) {
      const whole = expectSameAtEveryCut(v.bytes, v.name);
      frames += whole.frames.length;
      if (whole.error) errors++;
    }
    expect(frames).toBeGreaterThan(300);
    // The OF1.5 meter features reply whose 8 extra bytes read as a header of length 3.
    expect(errors).toBe(1);
  });

  it("all vectors back to back in one stream, in chunks of 1 to 64 bytes", () => {
    const joined = Buffer.concat(vectors.filter((v) => v.name.endsWith(".packet")).map((v) => v.bytes));
    for (const size of [1, 2, 3, 5, 7, 8, 13, 64]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < joined.length; i += size) chunks.push(joined.subarray(i, i + size));
      expectSame(viaFramer(chunks), viaScanner(chunks), `${size}-byte chunks`);
    }
  });

  describe.each(captureFiles().map((f) => [basename(f), f] as const))("%s", (_name, file) => {
    it("every TCP direction, split at every offset", () => {
      const streams = reassembleTcp(readCapture(readFileSync(file)));
      let frames = 0;
      for (const s of streams) {
        // A run after a gap starts at a segment boundary; in these captures that is a message boundary.
        for (const [i, run] of s.runs.entries()) {
          if (run.length === 0) continue;
          const whole = expectSameAtEveryCut(Buffer.from(run), `${s.key} run ${i}`);
          expect(whole.error, `${s.key} run ${i}`).toBeUndefined();
          frames += whole.frames.length;
        }
      }
      expect(frames).toBeGreaterThan(5);
    });
  });
});

describe("FrameScanner refuses bad lengths as Framer does", () => {
  const hello = h("04000008 00000001");
  const bad = (len: number) => h(`0400${len.toString(16).padStart(4, "0")} 00000002`);

  it("every length below 8: at the start, after a frame, and inside a carried header", () => {
    for (let len = 0; len < 8; len++) {
      for (const stream of [
        bad(len),
        Buffer.concat([hello, bad(len)]),
        Buffer.concat([hello, hello, bad(len)]),
      ]) {
        const whole = expectSameAtEveryCut(stream, `length ${len}`);
        expect(whole.error).toMatchObject({ code: "bad-length", offset: stream.length - 6 });
        expect(whole.error?.message).toMatch(
          new RegExp(`header length ${len} at stream byte ${stream.length - 6} is below the 8-byte header`),
        );
      }
    }
  });

  it("returns the whole frames before a bad length first, then throws on every later scan", () => {
    const sc = new FrameScanner();
    const runs = sc.scan(Buffer.concat([hello, hello, bad(4), hello]));
    expect(runs).toHaveLength(1);
    expect(runs[0]!.equals(Buffer.concat([hello, hello]))).toBe(true);
    expect(sc.failure).toMatchObject({ code: "bad-length", offset: 18 });
    let first: unknown;
    try {
      sc.scan(Buffer.alloc(0));
    } catch (err) {
      first = err;
    }
    expect(first).toBe(sc.failure);
    expect(() => sc.scan(hello)).toThrow(sc.failure!.message);
  });

  it("random streams of good and bad frames in random chunks (2,000 streams)", () => {
    let seed = 0x2b7e1516;
    const rand = () => {
      // xorshift32: the same streams on every run.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    let errors = 0;
    for (let s = 0; s < 2_000; s++) {
      const frames = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => {
        const size = 8 + Math.floor(rand() * 120);
        const f = Buffer.alloc(size, Math.floor(rand() * 256));
        f[0] = 1 + Math.floor(rand() * 6);
        f[1] = Math.floor(rand() * 36);
        f.writeUInt16BE(rand() < 0.05 ? Math.floor(rand() * 8) : size, 2);
        return f;
      });
      const stream = Buffer.concat(frames);
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length;) {
        const n = Math.floor(rand() * 40);
        chunks.push(stream.subarray(at, at + n));
        at += n;
      }
      const framer = viaFramer(chunks);
      expectSame(framer, viaScanner(chunks), `stream ${s}`);
      if (framer.error) errors++;
    }
    expect(errors).toBeGreaterThan(100);
  });
});

describe("FrameScanner runs", () => {
  it("returns whole frames in at most two runs and keeps tails, whatever the three-way split", () => {
    const a = packetIn(1, 20);
    const b = packetIn(2, 30);
    const c = packetIn(3, 9);
    const all = Buffer.concat([a, b, c]);
    for (let cut = 0; cut <= all.length; cut++) {
      for (let cut2 = cut; cut2 <= all.length; cut2++) {
        const sc = new FrameScanner();
        const runs = [all.subarray(0, cut), all.subarray(cut, cut2), all.subarray(cut2)].map((x) =>
          sc.scan(x),
        );
        for (const r of runs) expect(r.length).toBeLessThanOrEqual(2);
        expect(Buffer.concat(runs.flat())).toEqual(all);
      }
    }
  });

  it("hands out a view of the chunk, not a copy, when the chunk holds only whole frames", () => {
    const chunk = Buffer.concat([packetIn(1, 20), packetIn(2, 30)]);
    const runs = new FrameScanner().scan(chunk);
    expect(runs).toEqual([chunk]);
    expect(runs[0]!.buffer).toBe(chunk.buffer);
  });

  it("counts as interesting the frames whose type `skip` does not mark", () => {
    const skip = new Uint8Array(256);
    skip[10] = 1;
    const echo = h("01020008 00000007");
    const sc = new FrameScanner();
    // A PACKET_IN carried over, then an echo and a PACKET_IN whole.
    const first = Buffer.concat([packetIn(1, 20), echo, packetIn(2, 30)]);
    sc.scan(first.subarray(0, 10), skip);
    expect(sc.interesting).toBe(0);
    sc.scan(first.subarray(10), skip);
    expect(sc.interesting).toBe(1);
    sc.scan(first);
    expect(sc.interesting).toBe(3);
  });
});
