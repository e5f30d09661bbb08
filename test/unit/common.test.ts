import { describe, expect, it } from "vitest";
import { bigIntToMac, dpidToDecimal, dpidToHex, macToBigInt, parseDpid } from "../../src/common/dpid.js";
import { redactUri } from "../../src/common/log.js";

describe("dpid helpers", () => {
  it("keeps 64-bit ids exact beyond 2^53", () => {
    const d = parseDpid("0xfedcba9876543210")!;
    expect(dpidToHex(d)).toBe("fedcba9876543210");
    expect(dpidToDecimal(d)).toBe("18364758544493064720");
    expect(parseDpid("00:00:00:00:00:00:00:05")).toBe(5n);
    expect(parseDpid("dec:18364758544493064720")).toBe(d);
    expect(parseDpid("1ffffffffffffffff")).toBeUndefined();
    expect(parseDpid("xyz")).toBeUndefined();
  });
  it("reads RouteFlow vm_ids from MACs", () => {
    expect(macToBigInt("02:a0:a0:a0:a0:a0").toString()).toBe("2888912904352");
    expect(bigIntToMac(2888912904352n)).toBe("02:a0:a0:a0:a0:a0");
  });
  it("redacts passwords in URIs", () => {
    expect(redactUri("mongodb://u:secret@h:27017/db")).toBe("mongodb://u:***@h:27017/db");
    expect(redactUri("qemu:///system")).toBe("qemu:///system");
  });
});
