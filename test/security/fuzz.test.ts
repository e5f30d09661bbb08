/**
 * The CI-sized run of the OpenFlow fuzz campaign (bench/fuzz.ts runs >= 10 million frames): 200,000 frames
 * through the codec and live sessions in every mode and state, with time advancing. Seed: RFBOOT_FUZZ_SEED,
 * else random (printed, so a failure can be replayed with `node --import tsx bench/fuzz.ts --seed S`).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runFuzz } from "../../bench/lib/fuzz-core.js";
import { SHARED } from "../helpers/env.js";

const SEED = Number(process.env.RFBOOT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const FRAMES = Number(process.env.RFBOOT_FUZZ_FRAMES ?? 200_000);

describe("OpenFlow fuzz (codec + session)", () => {
  it(
    `${FRAMES} frames, seed ${SEED}: no finding, and every session state is reached`,
    { timeout: 240_000 },
    () => {
      const r = runFuzz({ frames: FRAMES, seed: SEED, vectorsDir: join(SHARED, "openflow-vectors") });
      if (r.findings.length > 0)
        console.log(`fuzz seed ${SEED} findings:`, JSON.stringify(r.findings, null, 2));
      expect(r.findings).toEqual([]);
      expect(r.frames).toBe(FRAMES);
      // The campaign must get past the header checks into every state, or it proves little.
      const states = Object.keys(r.statesVisited);
      for (const s of ["controller:hello", "controller:features", "controller:up", "controller:aux"]) {
        expect(states).toContain(s);
      }
      for (const s of ["relay:hello/connecting", "relay:up/relayed", "relay:up/standalone"])
        expect(states).toContain(s);
      // What rfboot answers to hostile input: BAD_REQUEST/BAD_LEN and HELLO_FAILED were both sent.
      expect(r.sent["error:1/6"]).toBeGreaterThan(0);
      expect(r.sent["error:0/0"]).toBeGreaterThan(0);
      expect(r.events.up).toBeGreaterThan(0);
      expect(r.events.down).toBeGreaterThan(0);
      expect(r.decoded).toBeGreaterThan(FRAMES / 4);
      expect(r.decodeErrors).toBeGreaterThan(FRAMES / 10);
      expect(r.buckets).toBeGreaterThan(1000);
    },
  );
});
