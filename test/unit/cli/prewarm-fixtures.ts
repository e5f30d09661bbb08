/** Fixtures of the status and plan tests with prewarm: two hosts, four datapaths, fake records. */
import { parseConfig, type RfbootConfig, type VmRecord } from "../../../src/provisioner/index.js";

/** DPIDS are the four configured datapaths (rfvmA..rfvmD), as 16 hex digits. */
export const DPIDS = {
  A: "00000000000000a1",
  B: "00000000000000b2",
  C: "00000000000000c3",
  D: "00000000000000d4",
} as const;

/** prewarmConfig is h1 and h2 (test driver, 4 VMs each), VMs of 128 MiB, with `policies.prewarm: prewarm`. */
export function prewarmConfig(prewarm: string): RfbootConfig {
  const vms = Object.entries(DPIDS).map(
    ([k, dpid]) =>
      `  "0x${dpid}": { name: rfvm${k}, vmId: "02:a0:a0:a0:a0:${dpid.slice(-2)}", dataPorts: 1 }`,
  );
  return parseConfig(`
hosts:
  - { name: h1, uri: "test:///h1", maxVms: 4 }
  - { name: h2, uri: "test:///h2", maxVms: 4 }
defaults: { hypervisor: test, memoryMiB: 128 }
policies: { prewarm: ${prewarm} }
datapaths:
${vms.join("\n")}
`);
}

/** fakeRecord is a `ready` record of `dpidHex` last changed at `updatedAt`, with the fields of `o`. */
export function fakeRecord(dpidHex: string, o: Partial<VmRecord>, updatedAt = new Date(0)): VmRecord {
  return {
    _id: dpidHex,
    dpidHex,
    dpid: BigInt(`0x${dpidHex}`).toString(10),
    state: "ready",
    updatedAt,
    ...o,
  };
}
