/** The outage label: set where the store classifies an error, read with isOutage (no message parsing). */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from "mongodb";
import { describe, expect, it } from "vitest";
import { ConfigError, StoreError } from "../../../../src/common/errors.js";
import { attempt, isOutage, wrap } from "../../../../src/provisioner/store/errors.js";

describe("StoreError outage label", () => {
  it("wrap labels a network or server-selection failure as an outage", () => {
    for (const cause of [
      new MongoNetworkError("connection reset"),
      new MongoServerSelectionError("Server selection timed out after 2000 ms", { type: "Unknown" } as never),
      Object.assign(new Error("write EPIPE"), { code: "EPIPE" }),
    ]) {
      const e = wrap("claim", cause, "0000000000000001");
      expect(e).toBeInstanceOf(StoreError);
      expect(e.outage).toBe(true);
      expect(isOutage(e)).toBe(true);
      expect(e.cause).toBe(cause);
    }
  });

  it("wrap does not label a refusal (authorization, bad value) as an outage", () => {
    const refused = new MongoServerError({ message: "not authorized on db to execute command", code: 13 });
    const e = wrap("claim", refused);
    expect(e.outage).toBe(false);
    expect(isOutage(e)).toBe(false);
    expect(e.message).toBe("claim failed: not authorized on db to execute command");
  });

  it("a transient server code (NotWritablePrimary) is an outage", () => {
    const e = wrap("claim", new MongoServerError({ message: "not primary", code: 10107 }));
    expect(isOutage(e)).toBe(true);
  });

  it("attempt passes rfboot's own errors through unlabelled and labels driver errors", async () => {
    await expect(attempt("patchRecord", () => Promise.reject(new ConfigError("bad", "x")))).rejects.toSatisfy(
      (e: unknown) => e instanceof ConfigError && !isOutage(e),
    );
    await expect(
      attempt("patchRecord", () => Promise.reject(new MongoNetworkError("gone"))),
    ).rejects.toSatisfy((e: unknown) => e instanceof StoreError && isOutage(e));
  });

  it("a StoreError made without the label is not an outage, whatever its message says", () => {
    expect(isOutage(new StoreError("MongoDB is unreachable", "close"))).toBe(false);
    expect(isOutage(new StoreError("stalled", "batch", { outage: true }))).toBe(true);
  });
});
