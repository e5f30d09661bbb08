/** `bin/rfboot decode` as a child process: JSON per message on stdout, one-line errors with exit 2. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage, type OfMessage } from "../../../src/controller/codec/index.js";
import { REPO, SHARED } from "../../helpers/env.js";

const RFBOOT = join(REPO, "bin", "rfboot");
const VECTORS = join(SHARED, "openflow-vectors", "ryu", "packet_data");
const tmp = mkdtempSync(join(tmpdir(), "rfbt-decode-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// bin/rfboot rebuilds dist/ when src/ is newer: build once up front, not inside a timed test.
beforeAll(async () => {
  await execa(RFBOOT, ["--version"], { timeout: 240_000 });
}, 300_000);

async function decode(...args: string[]) {
  const r = await execa(RFBOOT, ["decode", ...args], { reject: false, timeout: 120_000 });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

function lines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** expectOneLineError checks the exit code 2 contract: one line, no stack trace. */
function expectOneLineError(
  r: { code: number | undefined; stdout: string; stderr: string },
  message: RegExp,
): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe("");
  const errLines = r.stderr.split("\n").filter((l) => l.length > 0);
  expect(errLines).toHaveLength(1);
  expect(errLines[0]).toMatch(/^rfboot: /);
  expect(errLines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const featuresReply10 = readFileSync(join(VECTORS, "of10", "1-6-ofp_switch_features.packet"));

describe("rfboot decode", { timeout: 240_000 }, () => {
  it("decodes a FEATURES_REPLY from hex: dpid as 16 hex digits, ports, names", async () => {
    const r = await decode(featuresReply10.toString("hex"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [m, ...rest] = lines(r.stdout);
    expect(rest).toEqual([]);
    expect(m).toMatchObject({
      type: "features_reply",
      version: 1,
      versionName: "1.0",
      datapathId: "000000ff12345678",
      nTables: 255,
    });
    expect((m!.ports as { name: string; portNo: number }[]).map((p) => [p.portNo, p.name])).toEqual([
      [7, "Port7"],
      [6, "Port6"],
    ]);
  });

  it("prints one JSON line per message for concatenated messages (hex with spaces)", async () => {
    const r = await decode(
      "04000010 00000001 00010008 00000012",
      "04020009 00000002 ff",
      "040a0008 00000003",
    );
    expect(r.code).toBe(0);
    const ms = lines(r.stdout);
    expect(ms.map((m) => m.type)).toEqual(["hello", "echo_request", "unknown"]);
    expect(ms[0]!.elements).toEqual([
      { type: "versionbitmap", bitmaps: [0x12], versions: [1, 4], versionNames: ["1.0", "1.3"] },
    ]);
    expect(ms[1]).toMatchObject({ xid: 2, data: "ff" });
    expect(ms[2]).toMatchObject({ msgType: 10, msgTypeName: "PACKET_IN", body: "" });
  });

  it("reads --file as binary, and as hex text when the file is hex", async () => {
    const bin = await decode("--file", join(VECTORS, "of13", "4-19-ofp_role_request.packet"));
    expect(bin.code).toBe(0);
    expect(lines(bin.stdout)[0]).toMatchObject({
      type: "role_request",
      role: 2,
      generationId: "17294086455919964160",
    });
    const hexFile = join(tmp, "two.hex");
    writeFileSync(hexFile, `0x${featuresReply10.toString("hex")}\n01 12 00 08 00 00 00 09\n`);
    const text = await decode("--file", hexFile);
    expect(text.code).toBe(0);
    expect(lines(text.stdout).map((m) => [m.type, m.xid])).toEqual([
      ["features_reply", 0],
      ["barrier_request", 9],
    ]);
  });

  it("exits 2 with one line for a header length below 8", async () => {
    expectOneLineError(
      await decode("0100000400000000"),
      /header length 4 at stream byte 2 is below the 8-byte header/,
    );
  });

  it("exits 2 naming the field and byte offset of a truncated port list", async () => {
    const cut = Buffer.from(featuresReply10.subarray(0, 100));
    cut.writeUInt16BE(100, 2);
    expectOneLineError(
      await decode(cut.toString("hex")),
      /FEATURES_REPLY: port \(48 bytes\) needs 48 byte\(s\) at offset 80 but only 20 remain/,
    );
  });

  it("exits 2 for a message cut short, bad hex, and no input", async () => {
    expectOneLineError(
      await decode("0100000c00000001"),
      /message at byte 0 is cut short: 8 byte\(s\) left but its header length says 12/,
    );
    expectOneLineError(await decode("01zz"), /HEX: "z" is not a hex digit/);
    expectOneLineError(await decode("010"), /odd number of hex digits/);
    expectOneLineError(await decode(), /nothing to decode/);
    expectOneLineError(await decode("--file", join(tmp, "missing.bin")), /cannot read --file .*missing\.bin/);
  });

  it("prints the messages before a bad one, then exits 2 naming the bad one's index and byte", async () => {
    const good = "0100000800000001";
    const cases: [string[], RegExp][] = [
      // A body where FEATURES_REQUEST has none.
      [
        [good, "0105000900000002ff", "0100000800000003"],
        /^rfboot: message 2 \(at byte 8\): FEATURES_REQUEST: 1 unexpected trailing byte\(s\) at offset 8; stream byte 16$/,
      ],
      // A header length below 8 after a good frame: framing stops there.
      [
        [good, good, "0100000400000000"],
        /^rfboot: message 3 \(at byte 16\): .*header length 4 at stream byte 18/,
      ],
      // The last message cut short.
      [[good, "0100000c00000001"], /^rfboot: message 2 at byte 8 is cut short: 8 byte\(s\) left/],
    ];
    for (const [hex, message] of cases) {
      const r = await decode(...hex);
      expect(r.code).toBe(2);
      const before = hex.indexOf(hex.find((h, i) => i > 0 && h !== good) ?? "");
      expect(lines(r.stdout).map((m) => [m.type, m.xid])).toEqual(
        Array.from({ length: before }, (_, i) => ["hello", hex === cases[1]![0] ? 1 : i + 1]),
      );
      const errLines = r.stderr.split("\n").filter((l) => l.length > 0);
      expect(errLines).toHaveLength(1);
      expect(errLines[0]).toMatch(message);
    }
  });

  it("shows a HELLO whose element list is malformed, as ofp-print does: good elements, the rest as trailing, a warning, exit 0", async () => {
    // A good bitmap (1.0 + 1.3), then a bitmap element of length 7; then a second, well-formed message.
    const r = await decode(
      "04000020 00000005 00010008 00000012 00010007 00000012 00000000 00000000",
      "0400000800000006",
    );
    expect(r.code).toBe(0);
    const [hello, next, ...rest] = lines(r.stdout);
    expect(rest).toEqual([]);
    expect(hello).toEqual({
      type: "hello",
      version: 4,
      versionName: "1.3",
      xid: 5,
      msgType: 0,
      msgTypeName: "HELLO",
      elements: [{ type: "versionbitmap", bitmaps: [0x12], versions: [1, 4], versionNames: ["1.0", "1.3"] }],
      trailing: "00010007000000120000000000000000",
      problem: "HELLO: version bitmap length at offset 18: 7 is not 4 + a multiple of 4",
    });
    expect(next).toMatchObject({ type: "hello", xid: 6, elements: [] });
    expect(r.stderr).toMatch(
      /^rfboot: warning: message 1 \(at byte 0\): HELLO: version bitmap length at offset 18/,
    );
  });

  it("names reasons, flags, features and reserved ports beside the numbers; unknown bits as hex", async () => {
    const msg: OfMessage = {
      type: "port_status",
      version: 4,
      xid: 1,
      reason: 2,
      port: {
        portNo: 0xfffffffe,
        hwAddr: "02:00:00:00:00:01",
        name: "br0",
        config: 0x1 | 0x2 | 0x40,
        state: 0x1 | 0x400,
        curr: 0x820,
        advertised: 0,
        supported: 0x2820,
        peer: 0,
        currSpeed: 1_000_000,
        maxSpeed: 1_000_000,
      },
    };
    const r = await decode(encodeMessage(msg).toString("hex"));
    expect(r.code).toBe(0);
    expect(lines(r.stdout)[0]).toMatchObject({
      msgTypeName: "PORT_STATUS",
      reason: 2,
      reasonName: "MODIFY",
      port: {
        portNo: 0xfffffffe,
        portNoName: "LOCAL",
        config: 0x43,
        configNames: ["PORT_DOWN", "0x2", "NO_PACKET_IN"],
        state: 0x401,
        stateNames: ["LINK_DOWN", "0x400"],
        currNames: ["1GB_FD", "COPPER"],
        advertisedNames: [],
        supportedNames: ["1GB_FD", "COPPER", "AUTONEG"],
      },
    });
  });

  it("escapes control bytes and bytes that are not UTF-8 in port names: nothing raw reaches the terminal", async () => {
    const port = {
      portNo: 1,
      hwAddr: "02:00:00:00:00:01",
      name: "",
      config: 0,
      state: 0,
      curr: 0,
      advertised: 0,
      supported: 0,
      peer: 0,
    };
    // ESC [ 3 1 m, BEL, a C1 CSI (U+009B in UTF-8), an invalid byte, then NUL padding with junk after it.
    const raw = Buffer.alloc(16);
    Buffer.from([0x65, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x07, 0xc2, 0x9b, 0xff, 0x5c, 0x00, 0x41]).copy(raw);
    const bytes = encodeMessage({
      type: "port_status",
      version: 1,
      xid: 1,
      reason: 0,
      port: { ...port, rawName: raw, name: new TextDecoder().decode(raw.subarray(0, 11)) },
    });
    const r = await decode(bytes.toString("hex"));
    expect(r.code).toBe(0);
    const raws = [...r.stdout].filter((c) => {
      const n = c.charCodeAt(0);
      return (n < 0x20 && n !== 0x0a) || (n >= 0x7f && n <= 0x9f);
    });
    expect(raws).toEqual([]);
    const m = lines(r.stdout)[0] as { port: { name: string; rawName: string } };
    expect(m.port.name).toBe("e\\x1b[31m\\x07\\u009b\\xff\\x5c");
    expect(m.port.rawName).toBe(raw.toString("hex"));
  });
});
