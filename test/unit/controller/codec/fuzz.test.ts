/**
 * Random-input loop (after mqtt-packet's testRandom.js): mutated real vectors (bit flips, truncation,
 * length-field edits, splices) and random frames. decodeMessage must return a message or throw
 * OpenFlowError, never anything else; a decoded message must re-encode to the same bytes. The Framer
 * must only yield frames or throw OpenFlowError. Seed: RFBOOT_FUZZ_SEED, else random (printed on failure).
 */
import { describe, expect, it } from "vitest";
import { OpenFlowError } from "../../../../src/common/errors.js";
import { Framer, decodeMessage, encodeMessage } from "../../../../src/controller/codec/index.js";
import { vectorFiles } from "./vectors.js";

const SEED = Number(process.env.RFBOOT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with RFBOOT_FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const vectors = vectorFiles()
  .map((v) => v.bytes)
  .filter((b) => b.length >= 8 && b.readUInt16BE(2) === b.length);

/** Interesting message types per version family, so random frames reach every decoder. */
const TYPES = [0, 1, 2, 3, 4, 5, 6, 12, 16, 17, 18, 19, 20, 21, 24, 25, 30, 255];

function mutate(rand: () => number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  const base = Buffer.from(vectors[int(vectors.length)]!);
  let b = base;
  const kind = int(6);
  if (kind === 0) {
    for (let i = 1 + int(4); i > 0; i--) b[int(b.length)]! ^= 1 << int(8);
  } else if (kind === 1) {
    b = b.subarray(0, int(b.length + 1));
  } else if (kind === 2) {
    // Edit a length: the header's, or a 16-bit word inside the body (ports, elements, properties).
    const at = rand() < 0.3 ? 2 : 8 + 2 * int(Math.max(1, (b.length - 9) >> 1));
    if (at + 2 <= b.length)
      b.writeUInt16BE(rand() < 0.5 ? int(0x10000) : (b.readUInt16BE(at) + int(17) - 8) & 0xffff, at);
  } else if (kind === 3) {
    // Splice random bytes in and fix the header length, so the body decoders see it.
    const at = 8 + int(Math.max(1, b.length - 7));
    const junk = Buffer.from(Array.from({ length: int(24) }, () => int(256)));
    b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
  } else if (kind === 4) {
    // Change version and/or type, keeping the body: decoders of other versions see foreign layouts.
    b[0] = rand() < 0.8 ? 1 + int(6) : int(256);
    if (rand() < 0.5) b[1] = TYPES[int(TYPES.length)]!;
  } else {
    // A random frame with a plausible header.
    const len = 8 + int(rand() < 0.8 ? 64 : 400);
    b = Buffer.from(Array.from({ length: len }, () => int(256)));
    b[0] = 1 + int(6);
    b[1] = TYPES[int(TYPES.length)]!;
    if (b.length > 9 && rand() < 0.5) b.writeUInt16BE(13, 8);
  }
  if (kind !== 1 && kind !== 2 && b.length >= 4 && b.length <= 0xffff && rand() < 0.9)
    b.writeUInt16BE(b.length, 2);
  return b;
}

describe(`codec random-input loop (seed ${SEED})`, () => {
  it("decodeMessage returns a message that re-encodes identically, or throws OpenFlowError (100,000 inputs)", () => {
    const rand = prng(SEED);
    const outcome = { decoded: 0, rejected: 0 };
    const types = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const input = mutate(rand);
      let m;
      try {
        m = decodeMessage(input);
      } catch (err) {
        if (!(err instanceof OpenFlowError)) {
          throw new Error(`seed ${SEED} input ${i} ${input.toString("hex")}: threw ${String(err)}`, {
            cause: err,
          });
        }
        if (err.offset !== undefined && (err.offset < 0 || err.offset > input.length)) {
          throw new Error(
            `seed ${SEED} input ${input.toString("hex")}: offset ${err.offset} outside the frame`,
            { cause: err },
          );
        }
        outcome.rejected++;
        continue;
      }
      outcome.decoded++;
      types.add(m.type);
      const again = encodeMessage(m);
      if (!again.equals(input)) {
        throw new Error(
          `seed ${SEED}: ${input.toString("hex")} decoded as ${m.type} re-encodes as ${again.toString("hex")}`,
        );
      }
    }
    // Both paths really ran, across many message types.
    expect(outcome.decoded).toBeGreaterThan(20_000);
    expect(outcome.rejected).toBeGreaterThan(10_000);
    expect(types.size).toBeGreaterThanOrEqual(14);
  });

  it("the Framer yields whole frames or throws OpenFlowError on random streams (2,000 streams)", () => {
    const rand = prng(SEED ^ 0x5a5a5a5a);
    let frames = 0;
    let errors = 0;
    for (let s = 0; s < 2_000; s++) {
      const msgs = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => mutate(rand));
      const stream = Buffer.concat(msgs);
      const framer = new Framer();
      let at = 0;
      let out = 0;
      try {
        while (at < stream.length) {
          const n = 1 + Math.floor(rand() * 40);
          for (const f of framer.push(stream.subarray(at, at + n))) {
            expect(f.readUInt16BE(2)).toBe(f.length);
            expect(f.length).toBeGreaterThanOrEqual(8);
            out += f.length;
            frames++;
          }
          at += n;
        }
        framer.push(new Uint8Array(0));
        expect(out + framer.pending).toBe(stream.length);
      } catch (err) {
        if (!(err instanceof OpenFlowError))
          throw new Error(`seed ${SEED} stream ${s}: ${String(err)}`, { cause: err });
        expect(err.code).toBe("bad-length");
        errors++;
      }
    }
    expect(frames).toBeGreaterThan(1_000);
    expect(errors).toBeGreaterThan(10);
  });
});
