/**
 * Capacity a real libvirtd reports: two private libvirtd instances (test/helpers/libvirt-hosts.ts) reached
 * through their qemu driver (`qemu+unix:///system?socket=...`), each with its own /proc/meminfo bind-mounted
 * over the real one inside its mount namespace, which libvirt's `nodememstats` reads (its `nodeinfo` reads the
 * NUMA nodes in sysfs, so the host's memory size stays the machine's). Host "low" reports 180 MiB available,
 * host "roomy" 6 GiB: placement skips "low" although its configured memoryMiB allows the VM, and says why;
 * through the registry and placement, then through the whole daemon (a scripted switch joins; the VM is
 * defined on "roomy", and its placement event names "low" and why).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, parseConfig, VirshShellRunner } from "../../src/provisioner/index.js";
import { HostRegistry, type HostSpec } from "../../src/provisioner/libvirt/hosts.js";
import { place, PlacementError } from "../../src/provisioner/placement.js";
import { describeWith } from "../helpers/env.js";
import { FakeClock, FakeSwitches, MemoryConsole, RecordingStore } from "../unit/provisioner/daemon/fakes.js";
import { startLibvirtHost, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

/** meminfo is a /proc/meminfo with these figures (KiB); the fields libvirt reads and a few around them. */
const meminfo = (total: number, free: number, buffers: number, cached: number): string =>
  [
    `MemTotal:       ${total} kB`,
    `MemFree:        ${free} kB`,
    `MemAvailable:   ${free + buffers + cached} kB`,
    `Buffers:        ${buffers} kB`,
    `Cached:         ${cached} kB`,
    "SwapCached:            0 kB",
    "SwapTotal:             0 kB",
    "SwapFree:              0 kB",
    "",
  ].join("\n");

/** fakeMeminfo is the `setup` that bind-mounts a written meminfo over /proc/meminfo in the host's namespace. */
const fakeMeminfo = (text: string) => (dir: string) => {
  const f = join(dir, "meminfo");
  writeFileSync(f, text);
  return [`mount --bind ${f} /proc/meminfo`];
};

const virsh = (uri: string, cmd: string): string =>
  execFileSync("virsh", ["-c", uri, cmd], {
    env: { ...process.env, LC_ALL: "C" },
    timeout: 10_000,
  }).toString();

describeWith(["libvirt", "root"], "capacity reported by a real libvirtd (fake /proc/meminfo)", () => {
  let hosts: LibvirtTestHost[] = [];
  let specs: HostSpec[] = [];

  beforeAll(async () => {
    const started = await Promise.allSettled([
      // 100 + 20 + 60 MiB = 180 MiB available of 4 GiB.
      startLibvirtHost(`rfbtv-cap-low-${process.pid}`, {
        setup: fakeMeminfo(meminfo(4194304, 102400, 20480, 61440)),
      }),
      // 5 GiB free + 1 GiB cached of 8 GiB.
      startLibvirtHost(`rfbtv-cap-roomy-${process.pid}`, {
        setup: fakeMeminfo(meminfo(8388608, 5242880, 0, 1048576)),
      }),
    ]);
    hosts = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const bad = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (bad) throw bad.reason;
    specs = ["low", "roomy"].map((name, i) => ({
      name,
      uri: hosts[i]!.qemuUri,
      maxVms: 8,
      memoryMiB: 2048,
      maxConcurrentStarts: 2,
      memoryReserveMiB: 256,
    }));
  });
  afterAll(async () => {
    await stopLibvirtHosts(hosts);
  });

  it("libvirt reports the fake figures: nodememstats from the namespace's /proc/meminfo", () => {
    expect(virsh(hosts[0]!.qemuUri, "nodememstats")).toMatch(
      /total\s*:\s*4194304 KiB\nfree\s*:\s*102400 KiB\nbuffers\s*:\s*20480 KiB\ncached\s*:\s*61440 KiB/,
    );
    expect(virsh(hosts[1]!.qemuUri, "nodememstats")).toMatch(/free\s*:\s*5242880 KiB/);
    // The test driver of the same libvirtd has no nodememstats: such a host is placed by its config alone.
    expect(() => virsh(hosts[0]!.testUri, "nodememstats")).toThrow();
  });

  it("the probe carries the reported figures, and placement skips the low host for the roomy one", async () => {
    const reg = new HostRegistry({ hosts: specs });
    const [low, roomy] = await reg.probeAll();
    expect(low).toMatchObject({ reachable: true, memory: { totalMiB: 4096, availableMiB: 180 } });
    expect(roomy).toMatchObject({ reachable: true, memory: { totalMiB: 8192, availableMiB: 6144 } });
    // nodeinfo: the machine's own CPUs and memory size (sysfs, not /proc/meminfo).
    expect(low!.node?.cpus).toBeGreaterThan(0);
    expect(low!.node?.memoryMiB).toBeGreaterThan(0);
    const caps = reg.capacities();
    // Configured: 2048 MiB on each, so the config alone would take the VM on either (low first by name).
    expect(
      place(
        { vm: "rfbtv-cap", memoryMiB: 128 },
        caps.map(({ reported: _, ...c }) => c),
        [],
      ).host,
    ).toBe("low");
    const d = place({ vm: "rfbtv-cap", memoryMiB: 128 }, caps, []);
    expect(d.host).toBe("roomy");
    expect(d.skipped?.low).toMatch(
      /^host reports 180 MiB available of \d+ MiB \(reserve 256 MiB\): 0 \+ 128 > 0 MiB$/,
    );
    await reg.dispose();
  });

  it("with the roomy host gone from the candidates, the PlacementError names the low host's report", async () => {
    const reg = new HostRegistry({ hosts: [specs[0]!] });
    await reg.probeAll();
    let err: unknown;
    try {
      place({ vm: "rfbtv-cap", memoryMiB: 128 }, reg.capacities(), []);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlacementError);
    expect((err as PlacementError).reasons.low).toMatch(/^host reports 180 MiB available/);
    await reg.dispose();
  });

  it("the daemon places a joining switch's VM on the roomy host and records why the low one was skipped", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "rfbtv-cap-daemon-"));
    // Its start fails (no such bridge, no kernel): where the VM goes is what this test is about, not its boot.
    const config = parseConfig(
      `
stateDir: ${stateDir}
openflow: { mode: listen, listen: { host: 127.0.0.1, port: 6653 } }
mongo: { uri: "mongodb://127.0.0.1:1/x" }
hosts:
${specs.map((h) => `  - { name: ${h.name}, uri: "${h.uri}", maxVms: 8, memoryMiB: 2048 }`).join("\n")}
defaults:
  hypervisor: qemu
  memoryMiB: 128
  boot: { type: kernel, kernel: ${stateDir}/no-such-vmlinuz }
  network: { management: { type: bridge, bridge: rfbtvcapm }, data: { bridge: rfbtvcapd, openvswitch: false } }
  console: { log: false, pty: false }
datapaths:
  "0x1": { name: rfbtv-cap1, vmId: "02:c1:00:00:00:01", dataPorts: 0 }
policies: { leave: { action: keep } }
readiness: { consoleMarker: null }
`,
      { format: "yaml", source: "host-capacity" },
    );
    const shell = new VirshShellRunner({ defaultTimeoutMs: 20_000 });
    const store = new RecordingStore(new FakeClock());
    const hex16 = "0000000000000001";
    const switches = new FakeSwitches();
    const daemon = new Daemon({
      config,
      logger: silentLogger,
      instanceId: "cap-1",
      controller: switches,
      store,
      runner: shell.run,
      console: new MemoryConsole(),
      retryInitialMs: 600_000,
      retryMaxMs: 600_000,
      watchLibvirtEvents: false,
    });
    try {
      await daemon.start();
      switches.join(1n, []);
      await new Promise((r) => setTimeout(r, 50));
      await daemon.idle();
      const placement = store.events.find((e) => e.kind === "placement");
      expect(placement?.detail).toMatch(
        /^on roomy \(least-loaded\); skipped low: host reports 180 MiB available of \d+ MiB \(reserve 256 MiB\): 0 \+ 128 > 0 MiB$/,
      );
      // The ensure went to roomy: the record says so, and its start there failed (no such bridge or kernel).
      expect(store.records.get(hex16)?.host).toBe("roomy");
      const failure = store.events.find((e) => e.kind === "error")?.detail ?? "";
      expect(failure).toContain(hosts[1]!.socket);
      expect(failure).not.toContain(hosts[0]!.socket);
      // Nothing of it on low (one command string: virsh parses a single argument as its command line).
      expect(virsh(hosts[0]!.qemuUri, "list --all --name")).not.toContain("rfbtv-cap1");
    } finally {
      await daemon.stop();
      await shell.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
