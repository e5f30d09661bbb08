/** Store input validation: hostile and malformed values become ConfigErrors naming the field. */
import fc from "fast-check";
import { ObjectId, type Document, type Filter } from "mongodb";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../../src/common/errors.js";
import { PortRegisterWatcher } from "../../../../src/provisioner/store/readiness.js";
import {
  checkDpidHex,
  validateEvent,
  validatePatch,
  validateRfconfigRows,
} from "../../../../src/provisioner/store/validate.js";

const good = {
  vm_id: "2888912904352",
  vm_port: "1",
  ct_id: "0",
  dp_id: "18364758544493064720",
  dp_port: "4294967295",
};

function pathOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.path;
    throw e;
  }
  return undefined;
}

describe("validateRfconfigRows", () => {
  it("accepts RouteFlow rows, including 64-bit dpids and 32-bit ports", () => {
    expect(validateRfconfigRows([good])).toEqual([good]);
  });

  it.each([
    ["operator object", { ...good, vm_id: { $gt: "" } }, "rf[0].vm_id"],
    ["number", { ...good, dp_port: 1 }, "rf[0].dp_port"],
    ["leading zero", { ...good, vm_port: "01" }, "rf[0].vm_port"],
    ["hex", { ...good, dp_id: "5a" }, "rf[0].dp_id"],
    ["empty", { ...good, ct_id: "" }, "rf[0].ct_id"],
    ["2^64", { ...good, dp_id: "18446744073709551616" }, "rf[0].dp_id"],
    ["2^32 port", { ...good, dp_port: "4294967296" }, "rf[0].dp_port"],
    ["missing", { vm_id: "1", vm_port: "1", ct_id: "0", dp_id: "1" }, "rf[0].dp_port"],
    ["extra key", { ...good, $where: "sleep(1)" }, "rf[0].$where"],
    ["array row", [1, 2], "rf[0]"],
  ])("rejects %s", (_, row, path) => {
    expect(pathOf(() => validateRfconfigRows([row], "rf"))).toBe(path);
  });

  it("rejects every non-canonical string (property)", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const ok = /^(0|[1-9][0-9]*)$/.test(s) && BigInt(s) < 1n << 32n;
        expect(pathOf(() => validateRfconfigRows([{ ...good, vm_port: s }], "rf")) === undefined).toBe(ok);
      }),
    );
  });
});

describe("record patches and events", () => {
  it("accepts a full patch and drops undefined keys", () => {
    const p = validatePatch({
      state: "running",
      vmName: "rfvmA",
      switch: { peer: "127.0.0.1:1", version: 4, connected: true },
      ports: [{ dpPort: 1, vmPort: 1, name: "s5-eth1", hwAddr: "aa:bb:cc:dd:ee:ff" }],
      lastError: null,
      host: undefined,
    });
    expect(Object.keys(p).sort()).toEqual(["lastError", "ports", "state", "switch", "vmName"]);
  });

  it("accepts a prewarm boot's mark, and null to clear it", () => {
    const mark = { since: new Date(0), host: "h1" };
    expect(validatePatch({ prewarming: mark })).toEqual({ prewarming: mark });
    expect(validatePatch({ prewarming: null, state: "prewarmed" })).toEqual({
      prewarming: null,
      state: "prewarmed",
    });
  });

  it.each([
    [{ vmName: { $ne: null } }, "p.vmName"],
    [{ state: "RUNNING" }, "p.state"],
    [{ attempts: -1 }, "p.attempts"],
    [{ vmMac: "02:A0:A0:A0:A0:A0" }, "p.vmMac"],
    [{ uuid: "not-a-uuid" }, "p.uuid"],
    [{ joinedAt: "2024-01-01" }, "p.joinedAt"],
    [{ ports: [{ dpPort: 1.5 }] }, "p.ports.0.dpPort"],
    [{ vmName: "a\u0000b" }, "p.vmName"],
    [{ "switch.peer": "x" }, "p"],
    [{ prewarming: { since: new Date(0) } }, "p.prewarming.host"],
    [{ prewarming: { since: new Date(0), host: "h1", fingerprint: "f" } }, "p.prewarming"],
  ])("rejects %j at %s", (patch, path) => {
    expect(pathOf(() => validatePatch(patch, "p"))).toBe(path);
  });

  it("checks dpids and events", () => {
    expect(checkDpidHex("0000000000000005")).toBe("0000000000000005");
    expect(pathOf(() => checkDpidHex("5", "d"))).toBe("d");
    expect(pathOf(() => checkDpidHex({ $gt: "" }, "d"))).toBe("d");
    expect(validateEvent({ at: new Date(0), kind: "join" })).toEqual({ at: new Date(0), kind: "join" });
    expect(pathOf(() => validateEvent({ at: new Date(0), kind: "join", dpid: "5" }, "e"))).toBe("e.dpid");
    expect(pathOf(() => validateEvent({ at: new Date(0), kind: { $gt: "" } }, "e"))).toBe("e.kind");
  });
});

describe("PortRegisterWatcher (scripted channel)", () => {
  it("reads only through find, reports each vm_port once, and resolves when the expected set is complete", async () => {
    const queries: Filter<Document>[] = [];
    const t = Math.floor(Date.now() / 1000);
    const msg = (port: string, sec = t) => ({
      _id: ObjectId.createFromTime(sec),
      content: { vm_id: "9", vm_port: port, hwaddress: "x" },
    });
    const batches: Document[][] = [[msg("1")], [], [msg("1"), msg("2", t + 1)]];
    const find = (filter: Filter<Document>) => {
      queries.push(filter);
      return Promise.resolve(batches.shift() ?? []);
    };
    const w = new PortRegisterWatcher(find, "9", new Date(t * 1000), { expectPorts: ["1", "2"], pollMs: 1 });
    const ports: string[] = [];
    w.on("port", (p: { vmPort: string }) => ports.push(p.vmPort));
    const res = await w.ready;
    expect(ports).toEqual(["1", "2"]);
    expect(res.ports.map((p) => p.vmPort)).toEqual(["1", "2"]);
    expect(queries[0]).toMatchObject({ from: "9", type: 0 });
    // Each poll asks only for messages after the last one seen.
    expect((queries[2]!._id as { $gt: ObjectId }).$gt.equals(msg("1")._id)).toBe(true);
  });

  it("keeps polling through errors and rejects on timeout", async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const w = new PortRegisterWatcher(
      () => {
        calls++;
        return Promise.reject(new Error("down"));
      },
      "9",
      new Date(),
      { pollMs: 5, timeoutMs: 60 },
    );
    w.on("pollError", (e) => errors.push(e));
    await expect(w.ready).rejects.toThrow(/within 60 ms/);
    expect(calls).toBeGreaterThan(2);
    expect(errors.length).toBe(calls);
  });
});
