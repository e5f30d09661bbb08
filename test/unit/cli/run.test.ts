/** `rfboot run`'s --http argument and token sources. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { httpToken, parseListen } from "../../../src/cli/commands/run.js";

describe("parseListen", () => {
  it("takes HOST:PORT, [IPv6]:PORT, or a bare PORT on the loopback address", () => {
    expect(parseListen("9100", "--http")).toEqual({ host: "127.0.0.1", port: 9100 });
    expect(parseListen("0.0.0.0:9100", "--http")).toEqual({ host: "0.0.0.0", port: 9100 });
    expect(parseListen("[::1]:9100", "--http")).toEqual({ host: "::1", port: 9100 });
    expect(() => parseListen("host", "--http")).toThrow(/--http: expected HOST:PORT/);
  });
});

describe("httpToken", () => {
  it("reads the file's first line, else RFBOOT_HTTP_TOKEN, else none", () => {
    const dir = mkdtempSync(join(tmpdir(), "rfbt-tok-"));
    try {
      writeFileSync(join(dir, "t"), "  abc  \nignored\n");
      writeFileSync(join(dir, "empty"), "\n");
      expect(httpToken(join(dir, "t"), { RFBOOT_HTTP_TOKEN: "env" })).toBe("abc");
      expect(httpToken(undefined, { RFBOOT_HTTP_TOKEN: "env" })).toBe("env");
      expect(httpToken(undefined, {})).toBeUndefined();
      expect(() => httpToken(join(dir, "empty"), {})).toThrow(/first line is empty/);
      expect(() => httpToken(join(dir, "missing"), {})).toThrow(/--http-token-file .*missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
