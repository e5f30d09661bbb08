/** `bin/rfboot decode` as a child process: JSON per message on stdout, one-line errors with exit 2. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
    expect(ms[0]!.elements).toEqual([{ type: "versionbitmap", bitmaps: [0x12] }]);
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

  it("exits 2 for a message cut short, a bad second message, bad hex, and no input", async () => {
    expectOneLineError(
      await decode("0100000c00000001"),
      /message at byte 0 is cut short: 8 byte\(s\) left but its header length says 12/,
    );
    expectOneLineError(
      await decode("0100000800000001", "0400001000000000 0001000700000012"),
      /message 2 \(at byte 8\): HELLO: version bitmap length at offset 10: 7 is not 4 \+ a multiple of 4; stream byte 18/,
    );
    expectOneLineError(await decode("01zz"), /HEX: "z" is not a hex digit/);
    expectOneLineError(await decode("010"), /odd number of hex digits/);
    expectOneLineError(await decode(), /nothing to decode/);
    expectOneLineError(await decode("--file", join(tmp, "missing.bin")), /cannot read --file .*missing\.bin/);
  });
});
