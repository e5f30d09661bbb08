/** policies.hostLoss: defaults, accepted values, and a ConfigError naming the field. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../../src/provisioner/config/index.js";
import { configError } from "./config-error.js";

describe("policies.hostLoss", () => {
  it("defaults to report after 60 s, probing every 10 s", () => {
    expect(parseConfig("{}").policies.hostLoss).toEqual({
      action: "report",
      afterSeconds: 60,
      probeSeconds: 10,
    });
  });

  it("takes replace with its timings", () => {
    const c = parseConfig(`policies: { hostLoss: { action: replace, afterSeconds: 0, probeSeconds: 0.5 } }`);
    expect(c.policies.hostLoss).toEqual({ action: "replace", afterSeconds: 0, probeSeconds: 0.5 });
  });

  it.each([
    [
      "unknown action",
      `policies: { hostLoss: { action: migrate } }`,
      "policies.hostLoss.action",
      /report, replace/,
    ],
    [
      "negative afterSeconds",
      `policies: { hostLoss: { afterSeconds: -1 } }`,
      "policies.hostLoss.afterSeconds",
      /at least 0/,
    ],
    [
      "probeSeconds 0",
      `policies: { hostLoss: { probeSeconds: 0 } }`,
      "policies.hostLoss.probeSeconds",
      /at least 0.1/,
    ],
    [
      "afterSeconds as text",
      `policies: { hostLoss: { afterSeconds: "60" } }`,
      "policies.hostLoss.afterSeconds",
      /number/,
    ],
    [
      "unknown key",
      `policies: { hostLoss: { action: replace, target: h2 } }`,
      "policies.hostLoss.target",
      /unknown key/,
    ],
  ])("%s is a ConfigError naming the field", (_what, yaml, path, msg) => {
    const e = configError(yaml);
    expect(e.path).toBe(path);
    expect(e.message).toMatch(msg);
  });

  it("the example config parses and shows every hostLoss key", async () => {
    const { readFile } = await import("node:fs/promises");
    const text = await readFile(new URL("../../../../config/example.yaml", import.meta.url), "utf8");
    expect(text).toMatch(/hostLoss:[\s\S]*action: report[\s\S]*afterSeconds: 60[\s\S]*probeSeconds: 10/);
  });
});
