/**
 * Cross-check with an independent oracle: Open vSwitch's `ovs-ofctl ofp-print HEX` decodes what this
 * codec encodes and names the same dpid, ports, roles and flags. Needs only the ovs-ofctl binary
 * (fails under CI=true when it is missing, skips elsewhere).
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  buildHello,
  buildHelloFailed,
  buildNxRoleRequest,
  buildPortDescRequest,
  buildRoleRequest,
  decodeMessage,
  encodeMessage,
  type OfMessage,
  type Port,
} from "../../../../src/controller/codec/index.js";
import { IN_CI } from "../../../helpers/env.js";

function hasOvsOfctl(): boolean {
  try {
    execFileSync("ovs-ofctl", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const present = hasOvsOfctl();
if (!present && IN_CI) throw new Error("CI=true but ovs-ofctl (openvswitch-common) is missing: install it");

/** ofpPrint runs the oracle on the encoded message and returns its text. */
function ofpPrint(msg: OfMessage): string {
  const hex = encodeMessage(msg).toString("hex");
  return execFileSync("ovs-ofctl", ["ofp-print", hex], {
    encoding: "utf8",
    env: { ...process.env, LC_ALL: "C" },
  });
}

const port = (portNo: number, name: string, extra: Partial<Port> = {}): Port => ({
  portNo,
  hwAddr: `02:00:00:00:00:${(portNo & 0xff).toString(16).padStart(2, "0")}`,
  name,
  config: 0,
  state: 0,
  curr: 0xa0, // OFPPF_1GB_FD | OFPPF_COPPER in 1.0 numbering (1.1+ uses 0x820)
  advertised: 0,
  supported: 0,
  peer: 0,
  ...extra,
});

describe.skipIf(!present)("ovs-ofctl ofp-print agrees with the encoder", () => {
  it("HELLO with a version bitmap is byte-identical to `ovs-ofctl encode-hello 0x12`", () => {
    const ours = encodeMessage(buildHello([1, 4], 1));
    const oracle = execFileSync("ovs-ofctl", ["encode-hello", "0x12"], { encoding: "utf8" });
    const oracleHex = oracle
      .split("\n")
      .filter((l) => /^[0-9a-f]{8} {2}/.test(l))
      .map((l) => l.slice(10, 58).replace(/[\s-]/g, ""))
      .join("");
    expect(ours.toString("hex")).toBe(oracleHex);
    expect(ofpPrint(buildHello([1, 4], 1))).toMatch(/OFPT_HELLO \(OF1\.3\).*\n version bitmap: 0x01, 0x04/);
  });

  it("FEATURES_REPLY 1.0 with ports: dpid and port names", () => {
    const text = ofpPrint({
      type: "features_reply",
      version: 1,
      xid: 7,
      datapathId: 0xfedcba9876543210n,
      nBuffers: 256,
      nTables: 254,
      capabilities: 0xc7,
      actions: 0xfff,
      ports: [port(1, "s5-eth1"), port(2, "s5-eth2"), port(0xfffe, "s5")],
    });
    expect(text).toMatch(/OFPT_FEATURES_REPLY \(xid=0x7\): dpid:fedcba9876543210/);
    expect(text).toMatch(/n_tables:254, n_buffers:256/);
    expect(text).toMatch(/ 1\(s5-eth1\): addr:02:00:00:00:00:01/);
    expect(text).toMatch(/ 2\(s5-eth2\): addr:02:00:00:00:00:02/);
    expect(text).toMatch(/ LOCAL\(s5\): addr/);
    expect(text).toMatch(/current: +1GB-FD COPPER/);
  });

  it("FEATURES_REPLY 1.3: dpid and auxiliary id", () => {
    const text = ofpPrint({
      type: "features_reply",
      version: 4,
      xid: 8,
      datapathId: 5n,
      nBuffers: 0,
      nTables: 254,
      auxiliaryId: 1,
      capabilities: 0x4f,
      reserved: 0,
    });
    expect(text).toMatch(/OFPT_FEATURES_REPLY \(OF1\.3\) \(xid=0x8\): dpid:0000000000000005/);
    expect(text).toMatch(/auxiliary_id:1/);
  });

  it.each([
    [4, "OF1.3"],
    [5, "OF1.4"],
    [6, "OF1.5"],
  ] as const)("PORT_STATUS on version byte %i (%s): reason, number, name, speed", (version, tag) => {
    const p = port(3, "rfvmA.3", { curr: 0x820, currSpeed: 10_000_000, maxSpeed: 10_000_000 });
    const msg: OfMessage = { type: "port_status", version, xid: 9, reason: 2, port: p };
    const text = ofpPrint(msg);
    expect(text).toMatch(
      new RegExp(
        `OFPT_PORT_STATUS \\(${tag}\\) \\(xid=0x9\\): MOD: 3\\(rfvmA\\.3\\): addr:02:00:00:00:00:03`,
      ),
    );
    expect(text).toMatch(/current: +1GB-FD COPPER/);
    expect(text).toMatch(/speed: 10000 Mbps now, 10000 Mbps max/);
    // And our decoder reads back what OVS read.
    const back = decodeMessage(encodeMessage(msg));
    expect(back.type === "port_status" && [back.port.name, back.port.curr, back.port.currSpeed]).toEqual([
      "rfvmA.3",
      0x820,
      10_000_000,
    ]);
  });

  it("PORT_STATUS 1.0: delete", () => {
    expect(ofpPrint({ type: "port_status", version: 1, xid: 1, reason: 1, port: port(4, "eth4") })).toMatch(
      /OFPT_PORT_STATUS \(xid=0x1\): DEL: 4\(eth4\): addr:02:00:00:00:00:04/,
    );
  });

  it("PORT_DESC request on 1.0 (OVS stats 13), 1.3 and 1.5, and a REPLY_MORE reply", () => {
    expect(ofpPrint(buildPortDescRequest(1, 0x10))).toMatch(/OFPST_PORT_DESC request \(xid=0x10\)/);
    expect(ofpPrint(buildPortDescRequest(4, 0x11))).toMatch(
      /OFPST_PORT_DESC request \(OF1\.3\) \(xid=0x11\)/,
    );
    expect(ofpPrint(buildPortDescRequest(6, 0x12))).toMatch(
      /OFPST_PORT_DESC request \(OF1\.5\) \(xid=0x12\): port=ANY/,
    );
    const reply = ofpPrint({
      type: "port_desc_reply",
      version: 4,
      xid: 0x11,
      flags: 1,
      ports: [port(1, "p1", { curr: 0x820 }), port(2, "p2", { curr: 0x820 })],
    });
    expect(reply).toMatch(/OFPST_PORT_DESC reply \(OF1\.3\) \(xid=0x11\): flags=\[more\]/);
    expect(reply).toMatch(/ 1\(p1\): addr:02:00:00:00:00:01/);
    expect(reply).toMatch(/ 2\(p2\): addr:02:00:00:00:00:02/);
    const reply10 = ofpPrint({
      type: "port_desc_reply",
      version: 1,
      xid: 3,
      flags: 0,
      ports: [port(1, "q1")],
    });
    expect(reply10).toMatch(/OFPST_PORT_DESC reply \(xid=0x3\):\n 1\(q1\)/);
  });

  it("ROLE_REQUEST 1.3, ROLE_STATUS 1.4 and the Nicira role request on 1.0", () => {
    expect(ofpPrint(buildRoleRequest(4, 0x20, 3, 0x123456789abcdefn))).toMatch(
      /OFPT_ROLE_REQUEST \(OF1\.3\) \(xid=0x20\): role=(slave|secondary) generation_id=81985529216486895/,
    );
    expect(
      ofpPrint({
        type: "role_status",
        version: 5,
        xid: 0,
        role: 2,
        reason: 0,
        generationId: 7n,
        properties: [],
      }),
    ).toMatch(
      /OFPT_ROLE_STATUS \(OF1\.4\) \(xid=0x0\): role=(master|primary) generation_id=7 reason=(master|primary)_request/,
    );
    expect(ofpPrint(buildNxRoleRequest(0x21))).toMatch(
      /NXT_ROLE_REQUEST \(xid=0x21\): role=(slave|secondary)/,
    );
    expect(ofpPrint({ type: "nx_role_reply", version: 1, xid: 0x21, role: 1 })).toMatch(
      /NXT_ROLE_REPLY \(xid=0x21\): role=(master|primary)/,
    );
  });

  it("ERROR HELLO_FAILED/INCOMPATIBLE, ECHO and BARRIER", () => {
    expect(ofpPrint(buildHelloFailed(4, 0, "no common version"))).toMatch(
      /OFPT_ERROR \(OF1\.3\) \(xid=0x0\): OFPHFC_INCOMPATIBLE\nno common version/,
    );
    expect(ofpPrint({ type: "echo_request", version: 1, xid: 5, data: Uint8Array.of(1, 2) })).toMatch(
      /OFPT_ECHO_REQUEST \(xid=0x5\): 2 bytes of payload/,
    );
    expect(ofpPrint({ type: "barrier_request", version: 4, xid: 6 })).toMatch(
      /OFPT_BARRIER_REQUEST \(OF1\.3\) \(xid=0x6\)/,
    );
    expect(ofpPrint({ type: "barrier_reply", version: 1, xid: 6 })).toMatch(/OFPT_BARRIER_REPLY \(xid=0x6\)/);
  });
});
