/**
 * Several real libvirt hosts: three private libvirtd instances (test/helpers/libvirt-hosts.ts, test driver over
 * `test+unix:///default?socket=...`). Placement by capacity through the host registry, starts through the queue
 * with a per-host limit, stability across an rfboot restart (placements recovered from `list --all`), and a host
 * going away: its probe says unreachable, the shell runner does not hang, its VMs are re-placed.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { HostRegistry, type HostSpec } from "../../src/provisioner/libvirt/hosts.js";
import { placeAll, type PlacementRequest } from "../../src/provisioner/placement.js";
import { ActionQueue } from "../../src/provisioner/queue.js";
import { VirshShellRunner, isUnreachable } from "../../src/provisioner/libvirt/virsh.js";
import { describeWith } from "../helpers/env.js";
import {
  startLibvirtHosts,
  stopLibvirtHost,
  stopLibvirtHosts,
  type LibvirtTestHost,
} from "../helpers/libvirt-hosts.js";

const VMS = Array.from({ length: 7 }, (_, i) => `rfbtv-m${i}`);
const uuidOf = (vm: string) => `7e570000-0000-4000-8000-${vm.replace(/\D/g, "").padStart(12, "0")}`;
const xmlOf = (vm: string) =>
  `<domain type='test'><name>${vm}</name><uuid>${uuidOf(vm)}</uuid><memory unit='MiB'>128</memory><os><type>hvm</type></os></domain>`;
const isOurs = (n: string) => n.startsWith("rfbtv-m");

describeWith(["libvirt", "root"], "several libvirt hosts (private libvirtd instances)", () => {
  let hosts: LibvirtTestHost[] = [];
  let specs: HostSpec[] = [];
  const shell = new VirshShellRunner({ defaultTimeoutMs: 10_000 });
  const reqs: PlacementRequest[] = VMS.map((vm) => ({ vm, memoryMiB: 128 }));
  let first = new Map<string, string>();

  beforeAll(async () => {
    hosts = await startLibvirtHosts(3, { prefix: "rfbtv-mh" });
    specs = hosts.map((h, i) => ({
      name: `h${i + 1}`,
      uri: h.testUri,
      maxVms: 3,
      memoryMiB: 1024,
      maxConcurrentStarts: 2,
    }));
  });
  afterAll(async () => {
    await shell.close();
    await stopLibvirtHosts(hosts);
  });

  async function where(): Promise<Map<string, string[]>> {
    const reg = new HostRegistry({ hosts: specs, run: shell.run });
    const out = new Map<string, string[]>();
    for (const p of await reg.probeAll())
      if (p.reachable)
        out.set(
          p.name,
          p.domains.filter((d) => isOurs(d.name) && d.state === "running").map((d) => d.name),
        );
    return out;
  }

  it("places a burst by capacity and starts each VM once on its host, at most 2 starts per host at a time", async () => {
    const reg = new HostRegistry({ hosts: specs, run: shell.run });
    await reg.probeAll();
    const { decisions, errors } = placeAll(
      reqs,
      reg.capacities(),
      reg.placements(isOurs, () => 128),
    );
    expect(errors).toEqual([]);
    const live = new Map<string, number>();
    let peak = 0;
    const q = new ActionQueue<string, { host: string }>({
      classify: (a) => ({ host: a.host, limited: true }),
      hostLimit: (h) => specs.find((s) => s.name === h)!.maxConcurrentStarts,
      handler: async (vm, a) => {
        live.set(a.host, (live.get(a.host) ?? 0) + 1);
        peak = Math.max(peak, ...live.values());
        try {
          return await reg.manager(a.host).ensureRunning({ name: vm, uuid: uuidOf(vm), xml: xmlOf(vm) });
        } finally {
          live.set(a.host, live.get(a.host)! - 1);
        }
      },
    });
    const outs = await Promise.all(decisions.map((d) => q.submit(d.vm, { host: d.host })));
    expect(outs.every((o) => o.status === "done")).toBe(true);
    expect(peak).toBeLessThanOrEqual(2);
    const w = await where();
    const counts = [...w.values()].map((v) => v.length).sort();
    expect(counts).toEqual([2, 2, 3]); // 7 VMs over 3 hosts of 3: balanced
    for (const d of decisions) expect(w.get(d.host)).toContain(d.vm);
    expect([...w.values()].flat().sort()).toEqual([...VMS].sort()); // each exactly once
    first = new Map(decisions.map((d) => [d.vm, d.host]));
    await reg.dispose();
  });

  it("is stable across a restart: placements recovered from list --all keep every VM where it is", async () => {
    const reg = new HostRegistry({ hosts: specs, run: shell.run }); // a fresh process knows nothing else
    await reg.probeAll();
    const { decisions } = placeAll(
      [...reqs].reverse(),
      reg.capacities(),
      reg.placements(isOurs, () => 128),
    );
    for (const d of decisions) expect(d).toEqual({ vm: d.vm, host: first.get(d.vm), reason: "existing" });
    // Ensuring again adopts every VM: nothing restarted, nothing duplicated.
    for (const d of decisions) {
      expect(
        (await reg.manager(d.host).ensureRunning({ name: d.vm, uuid: uuidOf(d.vm), xml: xmlOf(d.vm) }))
          .action,
      ).toBe("adopted");
    }
    await reg.dispose();
  });

  it("a host that goes away is unreachable (no hang) and its VMs are re-placed on the others", async () => {
    const gone = hosts[1]!;
    await shell.run(gone.testUri, ["list", "--all", "--name"]); // the shell holds a connection to it
    await stopLibvirtHost(gone);
    hosts = hosts.filter((h) => h !== gone);
    const t0 = Date.now();
    const e = await shell.run(gone.testUri, ["list", "--all"]).catch((x: unknown) => x);
    expect(isUnreachable(e)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
    const bigger = specs.map((s) => ({ ...s, maxVms: 5 }));
    const reg = new HostRegistry({ hosts: bigger, run: shell.run, probeTimeoutMs: 3000 });
    const probes = await reg.probeAll();
    expect(probes.find((p) => p.name === "h2")).toMatchObject({ reachable: false });
    expect(probes.find((p) => p.name === "h2")!.error).toMatch(/unreachable/);
    const known = [...first].map(([vm, host]) => ({ vm, host, memoryMiB: 128, running: true }));
    const { decisions, errors } = placeAll(reqs, reg.capacities(), known);
    expect(errors).toEqual([]);
    for (const d of decisions) {
      if (first.get(d.vm) === "h2") expect(d).toMatchObject({ reason: "re-placed", previous: "h2" });
      else expect(d).toEqual({ vm: d.vm, host: first.get(d.vm), reason: "existing" });
      await reg.manager(d.host).ensureRunning({ name: d.vm, uuid: uuidOf(d.vm), xml: xmlOf(d.vm) });
    }
    const w = await where();
    expect([...w.keys()].sort()).toEqual(["h1", "h3"]);
    expect([...w.values()].flat().sort()).toEqual([...VMS].sort());
    await reg.dispose();
  });
});
