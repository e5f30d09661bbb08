/**
 * Gathering a snapshot's inputs from a daemon: the configured VMs, the daemon's datapaths and host probes,
 * the store's records; a store without the optional reads (events, rfboot's rows) still gives a snapshot;
 * a failed read keeps the previous answer and says why; before start (no store) the page still builds.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../../src/provisioner/config/index.js";
import { HostRegistry } from "../../../../src/provisioner/libvirt/index.js";
import { daemonInputs, type LiveDaemon } from "../../../../src/provisioner/http/source.js";
import { buildSnapshot } from "../../../../src/provisioner/http/snapshot.js";
import { FakeClock, RecordingStore, outage } from "../daemon/fakes.js";

const CONFIG = parseConfig(`
stateDir: /tmp/rfbt-src
mongo: { uri: "mongodb://127.0.0.1:1" }
hosts:
  - { name: h1, uri: "test:///h1", maxVms: 3 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0xa1": { name: rfvmA, vmId: "02:00:00:00:00:a1", dataPorts: 1 }
`);
const A = "00000000000000a1";

function fakeDaemon(store: RecordingStore | undefined): LiveDaemon {
  return {
    instanceId: "t:1",
    config: CONFIG,
    hosts: new HostRegistry({ hosts: CONFIG.hosts, run: () => Promise.reject(new Error("not probed here")) }),
    listening: () => ({ host: "127.0.0.1", port: 6653, mode: "listen" }),
    knownDatapaths: () => [],
    store,
  };
}

describe("daemonInputs", () => {
  it("reads the records; a store without the optional reads gives no events and no rows", async () => {
    const store = new RecordingStore(new FakeClock());
    await store.patchRecord(A, { vmName: "rfvmA", state: "running" });
    const input = await daemonInputs(fakeDaemon(store))();
    expect(input.configured).toEqual([{ dpidHex: A, name: "rfvmA" }]);
    expect(input.records.map((r) => [r.dpidHex, r.state])).toEqual([[A, "running"]]);
    expect(input.events).toEqual([]);
    expect(input.rfconfig).toEqual([]);
    expect(input.hosts).toEqual([{ name: "h1", uri: "test:///h1", maxVms: 3 }]);
    expect(input.store.readError).toBeUndefined();
    expect(buildSnapshot(input, new Date()).datapaths[0]).toMatchObject({ dpid: A, state: "running" });
  });

  it("keeps the previous records when a read fails, and says why", async () => {
    const store = new RecordingStore(new FakeClock());
    await store.patchRecord(A, { vmName: "rfvmA", state: "ready" });
    const gather = daemonInputs(fakeDaemon(store));
    await gather();
    store.failNext("listRecords", outage("listRecords"));
    const input = await gather();
    expect(input.records.map((r) => r.state)).toEqual(["ready"]);
    expect(input.store.readError).toMatch(/^MongoDB read failed: /);
  });

  it("builds before the daemon opened its store", async () => {
    const input = await daemonInputs(fakeDaemon(undefined))();
    expect(input.store).toEqual({ online: false, pending: 0, droppedEvents: 0 });
    expect(buildSnapshot(input, new Date()).datapaths[0]).toMatchObject({
      dpid: A,
      switch: "never",
      state: "not joined",
    });
  });
});
