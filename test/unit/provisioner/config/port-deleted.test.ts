/** policies.portDeleted: the default, the accepted values, and a ConfigError naming the field. */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../../src/provisioner/config/index.js";
import { configError } from "./config-error.js";

describe("policies.portDeleted", () => {
  it("defaults to keep (RouteFlow never removes a NIC or an rfconfig row)", () => {
    expect(parseConfig("{}").policies.portDeleted).toEqual({ action: "keep" });
    expect(parseConfig("policies: { portDeleted: {} }").policies.portDeleted).toEqual({ action: "keep" });
  });

  it("takes detach", () => {
    expect(parseConfig("policies: { portDeleted: { action: detach } }").policies.portDeleted).toEqual({
      action: "detach",
    });
  });

  it.each([
    [
      "unknown action",
      `policies: { portDeleted: { action: remove } }`,
      "policies.portDeleted.action",
      /keep, detach/,
    ],
    [
      "action as a boolean",
      `policies: { portDeleted: { action: true } }`,
      "policies.portDeleted.action",
      /keep, detach/,
    ],
    [
      "unknown key",
      `policies: { portDeleted: { action: keep, graceSeconds: 5 } }`,
      "policies.portDeleted.graceSeconds",
      /unknown key/,
    ],
    ["a bare value", `policies: { portDeleted: detach }`, "policies.portDeleted", /object|mapping/i],
  ])("%s is a ConfigError naming the field", (_what, yaml, path, msg) => {
    const e = configError(yaml);
    expect(e.path).toBe(path);
    expect(e.message).toMatch(msg);
  });

  it("the example config parses and shows the key; config/README.md documents both actions", async () => {
    const example = await readFile(new URL("../../../../config/example.yaml", import.meta.url), "utf8");
    expect(example).toMatch(/portDeleted:[^\n]*\n\s+action: keep /);
    const readme = await readFile(new URL("../../../../config/README.md", import.meta.url), "utf8");
    expect(readme).toMatch(/`policies\.portDeleted\.action` \| `keep` \|.*`detach`/);
  });
});
