/**
 * Real-switch captures: each TCP direction is reassembled from its payloads (ordered by seq,
 * retransmissions dropped), framed, decoded and re-encoded byte for byte; unknown types stay unknown.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { Framer, decodeMessage, encodeMessage, msgTypeName } from "../../../../src/controller/codec/index.js";
import { readCapture, reassembleTcp } from "../../../helpers/pcap.js";
import { captureFiles } from "./vectors.js";

const OPENFLOW_PORTS = new Set([6633, 6653]);

describe("real-switch captures", () => {
  const files = captureFiles();

  it("finds the captures", () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(files.some((f) => f.endsWith(".pcapng"))).toBe(true);
  });

  describe.each(files.map((f) => [basename(f), f] as const))("%s", (_name, file) => {
    it("frames and decodes every message of every TCP direction", () => {
      const packets = readCapture(readFileSync(file));
      expect(packets.length).toBeGreaterThan(10);
      const streams = reassembleTcp(packets).filter(
        (s) => OPENFLOW_PORTS.has(s.sport) || OPENFLOW_PORTS.has(s.dport),
      );
      expect(streams.length).toBeGreaterThanOrEqual(2);
      const counts: Record<string, number> = {};
      const dpids: bigint[] = [];
      let messages = 0;
      for (const s of streams) {
        // A run after a gap starts at a segment boundary; in these captures that is a message boundary.
        for (const run of s.runs) {
          const framer = new Framer();
          const frames = framer.push(run);
          expect(framer.pending, `${s.key}: bytes left unframed`).toBe(0);
          for (const frame of frames) {
            const m = decodeMessage(frame);
            messages++;
            const key =
              m.type === "unknown" ? `unknown:${msgTypeName(m.version, m.msgType) ?? m.msgType}` : m.type;
            counts[key] = (counts[key] ?? 0) + 1;
            expect(encodeMessage(m).equals(frame), `${s.key} ${key} re-encodes`).toBe(true);
            if (m.type === "features_reply") dpids.push(m.datapathId);
            if (m.type === "port_status" || m.type === "port_desc_reply") {
              for (const p of m.type === "port_status" ? [m.port] : m.ports)
                expect(p.hwAddr).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
            }
          }
        }
      }
      console.log(
        `${basename(file)}: ${messages} messages in ${streams.length} directions`,
        JSON.stringify(counts),
      );
      expect(messages).toBeGreaterThan(5);
      // Every capture holds a session start (hello) or a switch identifying itself.
      expect((counts.hello ?? 0) + dpids.length).toBeGreaterThan(0);
      for (const d of dpids) expect(d).not.toBe(0n);
      // Real switches answer what they are asked: a reply for each request type seen.
      if (counts.features_request) expect(counts.features_reply ?? 0).toBeGreaterThan(0);
      if (counts.echo_request) expect(counts.echo_reply ?? 0).toBeGreaterThan(0);
      if (counts.barrier_request) expect(counts.barrier_reply).toBe(counts.barrier_request);
    });
  });

  it("sees the expected switches: four OpenFlow 1.0 hardware dpids and an OF1.3 PORT_DESC exchange", () => {
    const seen = new Map<string, Set<string>>();
    for (const file of files) {
      const types = new Set<string>();
      for (const s of reassembleTcp(readCapture(readFileSync(file)))) {
        for (const run of s.runs) {
          for (const frame of new Framer().push(run)) {
            const m = decodeMessage(frame);
            types.add(
              m.type === "features_reply"
                ? `features_reply:${m.datapathId.toString(16)}:${m.ports?.length}`
                : m.type,
            );
          }
        }
      }
      seen.set(basename(file), types);
    }
    expect(seen.get("of10_7050sx_bsn.pcap")).toContain("features_reply:1c737d280f:8");
    expect(seen.get("of10_p3295.pcap")).toContain("features_reply:89e0162d5f4:53");
    expect(seen.get("of10_pf5240.pcap")).toContain("features_reply:100255cab0c07:8");
    expect(seen.get("of10_s4810.pcap")).toContain("features_reply:10001e88ae0e2:2");
    const ericsson = seen.get("of13_ericsson.pcapng")!;
    for (const t of [
      "hello",
      "port_desc_request",
      "port_desc_reply",
      "port_status",
      "error",
      "echo_request",
    ]) {
      expect(ericsson).toContain(t);
    }
  });
});
