/** Builders and pure helpers the session uses: wire bytes checked against hand-written spec layouts. */
import { describe, expect, it } from "vitest";
import {
  NX_ROLE,
  OFPCR_ROLE,
  OFP_VERSIONS,
  buildBarrierRequest,
  buildEchoReply,
  buildEchoRequest,
  buildFeaturesRequest,
  buildHello,
  buildHelloFailed,
  buildNxRoleRequest,
  buildPortDescRequest,
  buildRoleRequest,
  collectPortDesc,
  decodeMessage,
  encodeMessage,
  helloBitmapVersions,
  msgTypeName,
  negotiateVersion,
  versionName,
  type Hello,
  type OfMessage,
  type Port,
  type PortDescReply,
} from "../../../../src/controller/codec/index.js";

const hex = (m: OfMessage): string => encodeMessage(m).toString("hex");
const h = (s: string): string => s.replace(/\s+/g, "");

describe("version table", () => {
  it("maps 1.0..1.5 to wire bytes 1..6 and back", () => {
    expect(Object.entries(OFP_VERSIONS)).toEqual([
      ["1.0", 1],
      ["1.1", 2],
      ["1.2", 3],
      ["1.3", 4],
      ["1.4", 5],
      ["1.5", 6],
    ]);
    expect([0, 1, 4, 6, 7].map(versionName)).toEqual([undefined, "1.0", "1.3", "1.5", undefined]);
    expect(msgTypeName(1, 18)).toBe("BARRIER_REQUEST");
    expect(msgTypeName(4, 18)).toBe("MULTIPART_REQUEST");
  });
});

describe("builders encode the spec layouts", () => {
  it("HELLO: bare on a lone 1.0, bitmap otherwise (OpenFlow 1.3.5 §7.5.1)", () => {
    expect(hex(buildHello([1], 5))).toBe("0100000800000005");
    expect(hex(buildHello([1, 4], 1))).toBe(h("04000010 00000001 00010008 00000012"));
    expect(hex(buildHello([1, 2, 3, 4, 5, 6], 0))).toBe(h("06000010 00000000 00010008 0000007e"));
    expect(hex(buildHello([4, 40], 0))).toBe(h("28000018 00000000 0001000c 00000010 00000100 00000000"));
    expect(() => buildHello([])).toThrow(/at least one version/);
  });
  it("FEATURES_REQUEST, ECHO, BARRIER use each version's type numbers", () => {
    expect(hex(buildFeaturesRequest(1, 2))).toBe("0105000800000002");
    expect(hex(buildBarrierRequest(1, 3))).toBe("0112000800000003");
    expect(hex(buildBarrierRequest(4, 3))).toBe("0414000800000003");
    const req = buildEchoRequest(4, 9, Uint8Array.of(0xab));
    expect(hex(req)).toBe("0402000900000009ab");
    expect(hex(buildEchoReply(req))).toBe("0403000900000009ab");
  });
  it("PORT_DESC request: OVS stats 13 on 1.0, multipart on 1.3, port_no on 1.5", () => {
    expect(hex(buildPortDescRequest(1, 7))).toBe(h("0110000c 00000007 000d 0000"));
    expect(hex(buildPortDescRequest(4, 7))).toBe(h("04120010 00000007 000d 0000 00000000"));
    expect(hex(buildPortDescRequest(6, 7))).toBe(h("06120018 00000007 000d 0000 00000000 ffffffff 00000000"));
  });
  it("ROLE_REQUEST (1.2+) and the Nicira role request (1.0)", () => {
    expect(hex(buildRoleRequest(4, 1, OFPCR_ROLE.SLAVE, 5n))).toBe(
      h("04180018 00000001 00000003 00000000 0000000000000005"),
    );
    expect(hex(buildRoleRequest(3, 1, OFPCR_ROLE.NOCHANGE))).toBe(
      h("03180018 00000001 00000000 00000000 0000000000000000"),
    );
    expect(hex(buildNxRoleRequest(2, NX_ROLE.SLAVE))).toBe(h("01040014 00000002 00002320 0000000a 00000002"));
    const back = decodeMessage(
      encodeMessage({ type: "nx_role_reply", version: 1, xid: 2, role: NX_ROLE.MASTER }),
    );
    expect(back).toEqual({ type: "nx_role_reply", version: 1, xid: 2, role: 1 });
  });
  it("ERROR HELLO_FAILED/INCOMPATIBLE carries ASCII text", () => {
    const m = buildHelloFailed(4, 0, "we speak 1.3 — you 1.5");
    expect(hex(m)).toBe(
      "0401" + "0022" + "00000000" + "0000" + "0000" + Buffer.from("we speak 1.3 ? you 1.5").toString("hex"),
    );
  });
});

describe("helloBitmapVersions and negotiateVersion (OpenFlow 1.3.5 §6.3.1)", () => {
  const hello = (hexStr: string) => decodeMessage(Buffer.from(h(hexStr), "hex")) as Hello;
  it("reads bitmaps, tolerating unknown bits and elements", () => {
    expect(helloBitmapVersions(hello("04000010 00000001 00010008 00000012"))).toEqual([1, 4]);
    expect(helloBitmapVersions(hello("0100000800000001"))).toBeUndefined();
    expect(
      helloBitmapVersions(hello("0400001c 00000001 00090008 deadbeef 0001000c 80000012 00000001")),
    ).toEqual([1, 4, 31, 32]);
  });
  it("picks the highest common version, or the lower header without a bitmap", () => {
    expect(negotiateVersion([1, 4], hello("06000010 00000001 00010008 00000040"))).toBeUndefined();
    expect(negotiateVersion([1, 4], hello("06000010 00000001 00010008 00000042"))).toBe(1);
    expect(negotiateVersion([1, 4], hello("06000010 00000001 00010008 00000052"))).toBe(4);
    expect(negotiateVersion([1, 4], hello("04000010 00000001 00010008 00000002"))).toBe(1);
    expect(negotiateVersion([1, 4], hello("0100000800000001"))).toBe(1);
    expect(negotiateVersion([1, 4], hello("0500000800000001"))).toBe(4);
    expect(negotiateVersion([1, 4], hello("0300000800000001"))).toBeUndefined();
    expect(negotiateVersion([4], hello("0100000800000001"))).toBeUndefined();
  });
});

describe("collectPortDesc reassembles REPLY_MORE parts", () => {
  const port = (n: number): Port => ({
    portNo: n,
    hwAddr: "02:00:00:00:00:01",
    name: `p${n}`,
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
    currSpeed: 0,
    maxSpeed: 0,
  });
  const part = (flags: number, ...ports: number[]): PortDescReply => ({
    type: "port_desc_reply",
    version: 4,
    xid: 9,
    flags,
    ports: ports.map(port),
  });
  it("keeps order and finishes on the part without REPLY_MORE", () => {
    let s = collectPortDesc([], part(1, 1, 2));
    expect(s.done).toBe(false);
    s = collectPortDesc(s.ports, part(1, 3));
    expect(s.done).toBe(false);
    s = collectPortDesc(s.ports, part(0, 4));
    expect(s).toEqual({ ports: [port(1), port(2), port(3), port(4)], done: true });
  });
  it("round-trips a REPLY_MORE part through the wire", () => {
    const m = part(1, 1, 2);
    const back = decodeMessage(encodeMessage(m));
    expect(back).toEqual(m);
    expect(encodeMessage(m).readUInt16BE(10)).toBe(1);
  });
});

describe("1.4+ ports", () => {
  it("encode an ethernet property from the top-level fields when none are given", () => {
    const p: Port = {
      portNo: 1,
      hwAddr: "02:00:00:00:00:01",
      name: "eth1",
      config: 0,
      state: 4,
      curr: 0x820,
      advertised: 0,
      supported: 0,
      peer: 0,
      currSpeed: 1e6,
      maxSpeed: 1e6,
    };
    const back = decodeMessage(
      encodeMessage({ type: "port_status", version: 5, xid: 0, reason: 0, port: p }),
    );
    expect(back.type === "port_status" && back.port).toEqual({
      ...p,
      properties: [
        {
          type: "ethernet",
          curr: 0x820,
          advertised: 0,
          supported: 0,
          peer: 0,
          currSpeed: 1e6,
          maxSpeed: 1e6,
        },
      ],
    });
  });
});
