/** Display names (names.ts): per-version tables, unknown bits and numbers, printable wire text. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OFPPC11, decodeMessage, encodeMessage, withNames } from "../../../../src/controller/codec/index.js";
import {
  capabilityNames,
  errorCodeName,
  errorTypeName,
  flagNames,
  multipartTypeName,
  portNoName,
  portStateNames,
  printableText,
} from "../../../../src/controller/codec/names.js";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

describe("names beside numbers", () => {
  it("flag sets: bit order from bit 0, a bit without a name as hex, [] for 0", () => {
    expect(flagNames(OFPPC11, 0)).toEqual([]);
    expect(flagNames(OFPPC11, 0x80000043)).toEqual(["PORT_DOWN", "0x2", "NO_PACKET_IN", "0x80000000"]);
  });

  it("1.0 and 1.1+ differ: STP state, capabilities, reserved ports", () => {
    expect(portStateNames(1, 0x301)).toEqual(["LINK_DOWN", "STP_BLOCK"]);
    // STP_LISTEN is the field's 0: not listed, as ofp-print does not list it.
    expect(portStateNames(1, 0x1)).toEqual(["LINK_DOWN"]);
    expect(portStateNames(4, 0x301)).toEqual(["LINK_DOWN", "0x100", "0x200"]);
    expect(capabilityNames(1, 0x108)).toEqual(["STP", "0x100"]);
    expect(capabilityNames(2, 0x188)).toEqual(["GROUP_STATS", "ARP_MATCH_IP", "0x100"]);
    expect(capabilityNames(4, 0x188)).toEqual(["GROUP_STATS", "0x80", "PORT_BLOCKED"]);
    expect([portNoName(1, 0xffff), portNoName(1, 0xfffe), portNoName(4, 0xffff)]).toEqual([
      "NONE",
      "LOCAL",
      null,
    ]);
    expect([portNoName(4, 0xffffffff), portNoName(4, 0xfffffffd), portNoName(4, 7)]).toEqual([
      "ANY",
      "CONTROLLER",
      null,
    ]);
    expect([multipartTypeName(1, 4), multipartTypeName(4, 4), multipartTypeName(6, 1)]).toEqual([
      "PORT",
      "PORT_STATS",
      "FLOW_DESC",
    ]);
  });

  it("error types and codes exist from the version that introduced them; renames follow the version", () => {
    expect([errorTypeName(1, 3), errorTypeName(4, 3)]).toEqual(["FLOW_MOD_FAILED", "BAD_INSTRUCTION"]);
    expect([errorTypeName(2, 11), errorTypeName(3, 11), errorTypeName(4, 14)]).toEqual([
      null,
      "ROLE_REQUEST_FAILED",
      null,
    ]);
    expect([errorCodeName(2, 1, 2), errorCodeName(4, 1, 2)]).toEqual(["BAD_STAT", "BAD_MULTIPART"]);
    expect([errorCodeName(2, 1, 10), errorCodeName(3, 1, 10)]).toEqual([null, "IS_SLAVE"]);
    expect([errorCodeName(4, 0xffff, 1), errorCodeName(4, 1, 99)]).toEqual([null, null]);
  });

  it("printableText: NUL padding dropped, control bytes, bad UTF-8 and backslash as \\xHH, C1 and bidi as \\uHHHH", () => {
    expect(printableText(bytes(0x65, 0x74, 0x68, 0x30, 0, 0x41, 0x42))).toBe("eth0");
    expect(printableText(bytes(0x1b, 0x5b, 0x32, 0x4a, 0x07, 0x7f, 0x5c))).toBe("\\x1b[2J\\x07\\x7f\\x5c");
    expect(printableText(bytes(0xff, 0xc3, 0x28, 0xe2, 0x82))).toBe("\\xff\\xc3(\\xe2\\x82");
    expect(printableText(new TextEncoder().encode("p\u009b\u202e1ü私"))).toBe("p\\u009b\\u202e1ü私");
  });

  it("withNames keeps the numbers and the header first; a lenient HELLO decode keeps the bytes it cannot parse", () => {
    const frame = encodeMessage({
      type: "hello",
      version: 4,
      xid: 1,
      elements: [],
      trailing: bytes(0, 1, 0, 7, 0, 0, 0, 0x12),
    });
    expect(() => decodeMessage(frame)).toThrow(/version bitmap length at offset 10: 7/);
    const hello = decodeMessage(frame, { lenientHello: true });
    expect(hello).toMatchObject({
      elements: [],
      problem: expect.stringMatching(/7 is not 4 \+ a multiple of 4/),
    });
    expect(encodeMessage(hello).equals(frame)).toBe(true);
    expect(Object.keys(withNames(hello)).slice(0, 6)).toEqual([
      "type",
      "version",
      "versionName",
      "xid",
      "msgType",
      "msgTypeName",
    ]);
    expect(withNames({ type: "role_request", version: 4, xid: 1, role: 7, generationId: 0n })).toMatchObject({
      role: 7,
      roleName: null,
    });
  });

  it("property: any port name bytes and any flag values print without raw control characters, numbers kept", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 4, 5, 6),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.array(fc.nat({ max: 0xffffffff }), { minLength: 6, maxLength: 6 }),
        (version, rawName, [config, state, curr, advertised, supported, peer]) => {
          const port = {
            portNo: 1,
            hwAddr: "02:00:00:00:00:01",
            name: new TextDecoder().decode(
              rawName.subarray(0, rawName.indexOf(0) === -1 ? 16 : rawName.indexOf(0)),
            ),
            rawName,
            config: config!,
            state: state!,
            curr: curr!,
            advertised: advertised!,
            supported: supported!,
            peer: peer!,
          };
          const msg = decodeMessage(encodeMessage({ type: "port_status", version, xid: 1, reason: 2, port }));
          const named = withNames(msg) as { port: Record<string, unknown> };
          const name = named.port.name as string;
          expect(
            [...name].filter(
              (c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f),
            ),
          ).toEqual([]);
          expect(named.port).toMatchObject({ config, state, curr, advertised, supported, peer });
          // Every set bit is named or shown as hex: as many entries as set bits (1.0's 2-bit STP field aside).
          const bits = (x: number) => [...x.toString(2)].filter((b) => b === "1").length;
          expect((named.port.configNames as string[]).length).toBe(bits(config!));
          expect((named.port.currNames as string[]).length).toBe(bits(curr!));
        },
      ),
      { numRuns: 300 },
    );
  });
});
