/** policies.vmStopped: the defaults, the accepted values, and a ConfigError naming the field. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../../src/provisioner/config/index.js";
import { configError } from "./config-error.js";

const DEFAULTS = { action: "restart", backoffSeconds: 1, maxBackoffSeconds: 60, resetSeconds: 300 };

describe("policies.vmStopped", () => {
  it("defaults to restart with a 1 s backoff doubling to 60 s, reset after 300 s of running", () => {
    expect(parseConfig("{}").policies.vmStopped).toEqual(DEFAULTS);
    expect(parseConfig("policies: { vmStopped: {} }").policies.vmStopped).toEqual(DEFAULTS);
  });

  it("takes record, and other delays", () => {
    expect(
      parseConfig("policies: { vmStopped: { action: record, backoffSeconds: 0.5, maxBackoffSeconds: 5 } }")
        .policies.vmStopped,
    ).toEqual({ ...DEFAULTS, action: "record", backoffSeconds: 0.5, maxBackoffSeconds: 5 });
  });

  it.each([
    [
      "unknown action",
      `policies: { vmStopped: { action: ignore } }`,
      "policies.vmStopped.action",
      /restart, record/,
    ],
    [
      "negative backoff",
      `policies: { vmStopped: { backoffSeconds: -1 } }`,
      "policies.vmStopped.backoffSeconds",
      /0/,
    ],
    [
      "backoff as text",
      `policies: { vmStopped: { maxBackoffSeconds: soon } }`,
      "policies.vmStopped.maxBackoffSeconds",
      /number/,
    ],
    ["unknown key", `policies: { vmStopped: { retries: 3 } }`, "policies.vmStopped.retries", /unknown key/],
  ])("%s is a ConfigError naming the field", (_what, yaml, path, msg) => {
    const e = configError(yaml);
    expect(e.path).toBe(path);
    expect(e.message).toMatch(msg);
  });
});
