/**
 * Golden decode output: what `rfboot decode` prints for a set of Ryu's vectors (OpenFlow 1.0, 1.2,
 * 1.3, 1.4, 1.5) and for the messages of real-switch captures, compared with the JSON committed under
 * test/fixtures/decode/ so that any change to names or shape shows in a diff.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeStream, toJson } from "../../../src/cli/commands/decode.js";
import { REPO, SHARED } from "../../helpers/env.js";
import { readCapture, reassembleTcp } from "../../helpers/pcap.js";

// RFBOOT_UPDATE_GOLDEN=1 rewrites the fixtures (then review the diff by eye before committing).
const UPDATE = process.env.RFBOOT_UPDATE_GOLDEN === "1";
const FIXTURES = join(REPO, "test", "fixtures", "decode");
const VECTORS = join(SHARED, "openflow-vectors");

/** VECTOR_FILES are the Ryu vectors with a golden decoding: every message family the codec names. */
const VECTOR_FILES = [
  "of10/1-4-ofp_packet_in.packet",
  "of10/1-5-features_request.packet",
  "of10/1-6-ofp_switch_features.packet",
  "of12/3-4-ofp_packet_in.packet",
  "of12/3-6-ofp_features_reply.packet",
  "of12/3-39-ofp_port_status.packet",
  "of12/3-41-ofp_error_msg_experimenter.packet",
  "of13/4-0-ofp_desc_reply.packet",
  "of13/4-4-ofp_packet_in.packet",
  "of13/4-6-ofp_features_reply.packet",
  "of13/4-10-ofp_hello.packet",
  "of13/4-13-ofp_echo_request.packet",
  "of13/4-15-ofp_error_msg.packet",
  "of13/4-17-ofp_barrier_request.packet",
  "of13/4-19-ofp_role_request.packet",
  "of13/4-20-ofp_role_reply.packet",
  "of13/4-39-ofp_port_status.packet",
  "of13/libofproto-OFP13-port_status.packet",
  "of14/5-4-ofp_packet_in.packet",
  "of14/5-6-ofp_features_reply.packet",
  "of14/5-37-ofp_port_status.packet",
  "of14/5-65-ofp_role_status.packet",
  "of15/libofproto-OFP15-error_msg.packet",
  "of15/libofproto-OFP15-error_msg_experimenter.packet",
  "of15/libofproto-OFP15-hello.packet",
  "of15/libofproto-OFP15-packet_in.packet",
  "of15/libofproto-OFP15-port_desc_reply.packet",
  "of15/libofproto-OFP15-port_desc_request.packet",
  "of15/libofproto-OFP15-port_status.packet",
  "of15/libofproto-OFP15-role_status.packet",
];

const CAPTURES = [
  "of10_7050sx_bsn.pcap",
  "of10_p3295.pcap",
  "of10_pf5240.pcap",
  "of10_s4810.pcap",
  "of13_ericsson.pcapng",
];

/**
 * A capture's sessions are long and mostly flow/packet traffic the codec keeps as bytes: per TCP
 * direction the golden file keeps the first PER_DIRECTION decoded messages and the first
 * UNKNOWN_PER_DIRECTION of the others (which still get their type and multipart names).
 */
const PER_DIRECTION = 12;
const UNKNOWN_PER_DIRECTION = 3;

/** pick keeps the messages a capture's golden file holds for one direction. */
function pick(msgs: unknown[]): unknown[] {
  let known = 0;
  let unknown = 0;
  return msgs.filter((m) =>
    (m as { type: string }).type === "unknown" ? unknown++ < UNKNOWN_PER_DIRECTION : known++ < PER_DIRECTION,
  );
}

/** shown is what the CLI prints for each message, parsed back so that the fixture can be indented. */
function shown(bytes: Uint8Array): unknown[] {
  const d = decodeStream(bytes);
  if (d.failure) throw d.failure;
  return d.messages.map((m) => JSON.parse(toJson(m)) as unknown);
}

function checkGolden(file: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2) + "\n";
  if (UPDATE) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  expect(text).toBe(readFileSync(file, "utf8"));
}

describe("golden decode output", () => {
  it.each(VECTOR_FILES)("Ryu %s", (name) => {
    const bytes = readFileSync(join(VECTORS, "ryu", "packet_data", name));
    const [msg, ...rest] = shown(bytes);
    expect(rest).toEqual([]);
    checkGolden(join(FIXTURES, "ryu", name.replace(/\.packet$/, ".json")), msg);
  });

  it.each(CAPTURES)("capture %s: the first messages of each direction", (name) => {
    const streams = reassembleTcp(readCapture(readFileSync(join(VECTORS, "captures", name))))
      .filter((s) => [6633, 6653].includes(s.sport) || [6633, 6653].includes(s.dport))
      .sort((a, b) => a.key.localeCompare(b.key));
    const out: Record<string, unknown[]> = {};
    for (const s of streams) {
      const run = s.runs[0];
      if (run === undefined) continue;
      out[s.key] = pick(shown(run));
    }
    expect(Object.keys(out).length).toBeGreaterThanOrEqual(2);
    checkGolden(join(FIXTURES, "captures", `${basename(name).replace(/\.pcap(ng)?$/, "")}.json`), out);
  });
});
