/**
 * Bad input has its own vectors with the expected error (code, byte offset and message), so that a
 * changed error is a visible change.
 */
import { describe, expect, it } from "vitest";
import { OpenFlowError, type OpenFlowErrorCode } from "../../../../src/common/errors.js";
import {
  Framer,
  buildRoleRequest,
  decodeMessage,
  encodeMessage,
  type OfMessage,
} from "../../../../src/controller/codec/index.js";

/** h builds a frame from hex pieces (spaces ignored) and fixes nothing: lengths are as written. */
const h = (...parts: string[]): Buffer => Buffer.from(parts.join("").replace(/\s+/g, ""), "hex");

/** A 1.0 48-byte port (port 1, "eth1"). */
const PORT10 = "0001 020000000001" + Buffer.from("eth1").toString("hex").padEnd(32, "0") + "00".repeat(24);

interface BadVector {
  name: string;
  frame: Buffer;
  code: OpenFlowErrorCode;
  offset: number;
  message: RegExp;
}

const BAD: BadVector[] = [
  {
    name: "empty input",
    frame: h(""),
    code: "truncated",
    offset: 0,
    message: /frame of 0 byte\(s\) is shorter than the 8-byte header/,
  },
  {
    name: "7-byte header",
    frame: h("01000008000000"),
    code: "truncated",
    offset: 7,
    message: /shorter than the 8-byte header/,
  },
  {
    name: "length < 8",
    frame: h("01000004 00000000"),
    code: "bad-length",
    offset: 2,
    message: /header length 4 at offset 2 is below the 8-byte header/,
  },
  {
    name: "length > buffer",
    frame: h("04000010 00000001"),
    code: "bad-length",
    offset: 2,
    message: /header length 16 at offset 2 does not match the frame's 8 bytes \(message truncated\)/,
  },
  {
    name: "length < buffer",
    frame: h("04020008 00000001 0000"),
    code: "bad-length",
    offset: 2,
    message: /header length 8 .* frame's 10 bytes \(bytes after the message\)/,
  },
  {
    name: "truncated port list (1.0 FEATURES_REPLY, 1 port + 20 bytes)",
    frame: h(
      "01060064 00000002",
      "0000000000000005 00000100 ff000000 000000c7 00000fff",
      PORT10,
      "00".repeat(20),
    ),
    code: "truncated",
    offset: 80,
    message: /FEATURES_REPLY: port \(48 bytes\) needs 48 byte\(s\) at offset 80 but only 20 remain/,
  },
  {
    name: "truncated 1.3 FEATURES_REPLY",
    frame: h("04060010 00000002", "00000000 00000005"),
    code: "truncated",
    offset: 16,
    message: /FEATURES_REPLY: n_buffers needs 4 byte\(s\) at offset 16/,
  },
  {
    name: "bad bitmap length (7)",
    frame: h("04000010 00000000", "00010007 00000012"),
    code: "bad-field",
    offset: 10,
    message: /HELLO: version bitmap length at offset 10: 7 is not 4 \+ a multiple of 4/,
  },
  {
    name: "hello element length below its header",
    frame: h("04000010 00000000", "00010002 00000000"),
    code: "bad-field",
    offset: 10,
    message: /hello element length at offset 10: 2 is below the 4-byte hello element header/,
  },
  {
    name: "hello element longer than the body",
    frame: h("04000010 00000000", "00010010 00000012"),
    code: "truncated",
    offset: 12,
    message: /HELLO: hello element body \(length 16\) needs 12 byte\(s\) at offset 12 but only 4 remain/,
  },
  {
    name: "ERROR without code",
    frame: h("0401000a 00000003 0001"),
    code: "truncated",
    offset: 10,
    message: /ERROR: error code needs 2/,
  },
  {
    name: "FEATURES_REQUEST with a body",
    frame: h("0405000c 00000003 deadbeef"),
    code: "trailing-bytes",
    offset: 8,
    message: /FEATURES_REQUEST: 4 unexpected trailing byte\(s\) at offset 8/,
  },
  {
    name: "BARRIER_REPLY with a body (1.0 numbering: 19)",
    frame: h("01130009 00000003 00"),
    code: "trailing-bytes",
    offset: 8,
    message: /BARRIER_REPLY: 1 unexpected trailing byte/,
  },
  {
    name: "1.4 port length below 40",
    frame: h("050c0038 00000000", "00 00000000000000", "00000001 0020 0000", "00".repeat(32)),
    code: "bad-field",
    offset: 20,
    message: /PORT_STATUS: port length at offset 20: 32 is below the 40-byte port header/,
  },
  {
    name: "1.4 ethernet property of the wrong length",
    frame: h(
      "050c0048 00000000",
      "00 00000000000000",
      "00000001 0038 0000 020000000001 0000",
      "00".repeat(16),
      "00000000 00000000",
      "0000 0010 00000000 00000000 00000000",
    ),
    code: "bad-field",
    offset: 58,
    message: /ethernet port property length at offset 58: 16 is not 32/,
  },
  {
    name: "1.3 PORT_STATUS port cut short",
    frame: h("040c0020 00000000", "00 00000000000000", "00000001 00000000 0200000000010000"),
    code: "truncated",
    offset: 16,
    message: /PORT_STATUS: port \(64 bytes\) needs 64 byte\(s\) at offset 16 but only 16 remain/,
  },
  {
    name: "1.3 port list with a partial port",
    frame: h("04130018 00000009", "000d0000 00000000", "00000001 00000000"),
    code: "truncated",
    offset: 16,
    message: /PORT_DESC_REPLY: port \(64 bytes\) needs 64 byte\(s\) at offset 16 but only 8 remain/,
  },
  {
    name: "1.3 PORT_DESC request with a body",
    frame: h("04120014 00000009", "000d0000 00000000", "00000001"),
    code: "trailing-bytes",
    offset: 16,
    message: /PORT_DESC_REQUEST: 4 unexpected trailing byte/,
  },
  {
    name: "ROLE_REQUEST without generation_id",
    frame: h("04180010 00000001", "00000003 00000000"),
    code: "truncated",
    offset: 16,
    message: /ROLE_REQUEST: generation_id needs 8 byte\(s\) at offset 16/,
  },
  {
    name: "Nicira role request without role",
    frame: h("01040010 00000001", "00002320 0000000a"),
    code: "truncated",
    offset: 16,
    message: /NX_ROLE_REQUEST: role needs 4 byte\(s\) at offset 16/,
  },
  {
    name: "ROLE_STATUS property running past the end",
    frame: h("051e0020 00000001", "00000002 00 000000 0000000000000007", "ffff0010 00000065"),
    code: "truncated",
    offset: 28,
    message:
      /ROLE_STATUS: role property body \(length 16\) needs 12 byte\(s\) at offset 28 but only 4 remain/,
  },
];

function caught(fn: () => unknown): OpenFlowError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OpenFlowError);
    return err as OpenFlowError;
  }
  throw new Error("expected an OpenFlowError, nothing was thrown");
}

describe("decodeMessage rejects bad input with the field and byte offset", () => {
  it.each(BAD.map((b) => [b.name, b] as const))("%s", (_name, b) => {
    const err = caught(() => decodeMessage(b.frame));
    expect(err.message).toMatch(b.message);
    expect(err.code).toBe(b.code);
    expect(err.offset).toBe(b.offset);
  });
});

describe("tolerated oddities decode and re-encode exactly", () => {
  const cases: [string, Buffer, (m: OfMessage) => void][] = [
    [
      "unpadded 12-byte bitmap element",
      h("0400 0014 00000001", "0001000c 00000012 00000001"),
      (m) =>
        expect(
          m.type === "hello" && m.elements[0]?.type === "versionbitmap" && m.elements[0].bitmaps,
        ).toEqual([0x12, 1]),
    ],
    [
      "unknown element type then a bitmap",
      h("0400 0018 00000001", "00070006 abcd 0000", "00010008 00000010"),
      (m) =>
        expect(m.type === "hello" && m.elements.map((e) => e.type)).toEqual(["unknown", "versionbitmap"]),
    ],
    [
      "non-zero padding and non-NUL port name bytes (1.3 PORT_STATUS)",
      h(
        "040c0050 00000000",
        "02 01020304050607",
        "00000001 aabbccdd 020000000001 eeff",
        Buffer.from("eth1").toString("hex") + "00" + "41".repeat(11),
        "00".repeat(32),
      ),
      (m) => {
        expect(m.type === "port_status" && m.port.name).toBe("eth1");
        expect(m.type === "port_status" && m.pad).toBeTruthy();
      },
    ],
    [
      "1.1 ROLE_REQUEST number is unknown before 1.2",
      h("02180018 00000001", "00".repeat(16)),
      (m) => expect(m.type).toBe("unknown"),
    ],
    ["version 7 HELLO", h("07000010 00000001 00010008 00000080"), (m) => expect(m.type).toBe("hello")],
    ["version 7 FEATURES_REPLY stays unknown", h("07060008 00000001"), (m) => expect(m.type).toBe("unknown")],
    [
      "1.0 vendor message that is not a Nicira role",
      h("01040010 00000001 00002320 00000014"),
      (m) => expect(m.type).toBe("unknown"),
    ],
  ];
  it.each(cases)("%s", (_name, frame, check) => {
    const m = decodeMessage(frame);
    check(m);
    expect(encodeMessage(m).toString("hex")).toBe(frame.toString("hex"));
  });
});

describe("encodeMessage rejects what cannot go on the wire", () => {
  it("a message the version lacks", () => {
    const err = caught(() =>
      encodeMessage({ type: "role_request", version: 1, xid: 1, role: 3, generationId: 0n }),
    );
    expect(err.code).toBe("bad-version");
    expect(err.message).toMatch(/role_request does not exist in version byte 1 \(OpenFlow 1\.2\+\)/);
    expect(() => buildRoleRequest(1, 1)).toThrow(/use buildNxRoleRequest on 1.0/);
    expect(() => encodeMessage({ type: "nx_role_request", version: 4, xid: 1, role: 2 })).toThrow(
      /1\.0 only/,
    );
  });
  it("a port name over 16 bytes and a bad MAC", () => {
    const port = {
      portNo: 1,
      hwAddr: "02:00:00:00:00:01",
      name: "x".repeat(17),
      config: 0,
      state: 0,
      curr: 0,
      advertised: 0,
      supported: 0,
      peer: 0,
    };
    expect(() => encodeMessage({ type: "port_status", version: 4, xid: 0, reason: 0, port })).toThrow(
      /name "x{17}" is longer than 16 bytes/,
    );
    expect(() =>
      encodeMessage({
        type: "port_status",
        version: 4,
        xid: 0,
        reason: 0,
        port: { ...port, name: "a", hwAddr: "zz" },
      }),
    ).toThrow(/hwAddr "zz" is not a MAC address/);
  });
  it("a 32-bit port number on OpenFlow 1.0", () => {
    const port = {
      portNo: 0xfffffffe,
      hwAddr: "02:00:00:00:00:01",
      name: "p",
      config: 0,
      state: 0,
      curr: 0,
      advertised: 0,
      supported: 0,
      peer: 0,
    };
    expect(() => encodeMessage({ type: "port_status", version: 1, xid: 0, reason: 0, port })).toThrow(
      /port number 4294967294 does not fit OpenFlow 1.0's 16 bits/,
    );
  });
  it("a message over 65535 bytes and a bad xid", () => {
    const err = caught(() =>
      encodeMessage({ type: "echo_request", version: 4, xid: 0, data: new Uint8Array(70000) }),
    );
    expect(err.code).toBe("bad-length");
    expect(err.message).toMatch(/echo_request encodes to 70008 bytes, over the 65535-byte OpenFlow maximum/);
    expect(() => encodeMessage({ type: "barrier_request", version: 4, xid: -1 })).toThrow(
      /xid -1 is not an integer/,
    );
  });
});

describe("Framer rejects bad lengths with the stream offset", () => {
  it("length < 8 after a whole frame: the frame first, then the error, then always the error", () => {
    const f = new Framer();
    expect(f.push(h("04020008 00000001")).length).toBe(1);
    const frames = f.push(h("04020008 00000002", "0402000400000003"));
    expect(frames.length).toBe(1);
    const err = caught(() => f.push(new Uint8Array(0)));
    expect(err.code).toBe("bad-length");
    expect(err.offset).toBe(18);
    expect(err.message).toMatch(/header length 4 at stream byte 18 is below the 8-byte header size/);
    expect(() => f.push(h("04020008 00000004"))).toThrow(err.message);
  });
  it("a length above maxLength; partial data is kept until complete", () => {
    const f = new Framer({ maxLength: 1024 });
    expect(f.push(h("0402"))).toEqual([]);
    expect(f.pending).toBe(2);
    const err = caught(() => f.push(h("0800 00000001")));
    expect(err.message).toMatch(/header length 2048 at stream byte 2 is above the accepted maximum 1024/);
    expect(() => new Framer({ maxLength: 4 })).toThrow(/maxLength 4 is out of range/);
  });
});
