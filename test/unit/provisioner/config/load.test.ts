import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../../src/common/errors.js";
import {
  configHash,
  findConfiguredVm,
  hostsFor,
  isRemoteUri,
  listConfiguredVms,
  loadConfig,
  parseConfig,
  reresolveVm,
  resolveDatapath,
  templateVmId,
} from "../../../../src/provisioner/config/index.js";
import { buildDomainXml, validateVmDescription } from "../../../../src/xmlgen/index.js";
import { REPO } from "../../../helpers/env.js";

const tmp = mkdtempSync(join(tmpdir(), "rfbt-cfg-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("defaults", () => {
  it("fills every section from the schema's defaults", () => {
    const c = parseConfig(`datapaths: {}`);
    expect(c.openflow).toEqual({
      mode: "listen",
      listen: { host: "127.0.0.1", port: 6653 },
      upstream: { host: "127.0.0.1", port: 6633 },
      versions: ["1.0", "1.3"],
      role: "slave",
      echoIntervalSeconds: 5,
      echoTimeoutSeconds: 15,
      handshakeTimeoutSeconds: 10,
      maxConnections: 4096,
      maxConnectionsPerPeer: 1024,
      maxMessageLength: 65535,
      relayReplyPollMicroseconds: 1000,
      relayReplyPollCpuShare: 0.25,
    });
    expect(c.mongo).toEqual({ uri: "mongodb://127.0.0.1:27017", database: "db", collectionPrefix: "rfboot" });
    expect(c.hosts).toEqual([
      {
        name: "local",
        uri: "qemu:///system",
        maxVms: 64,
        maxConcurrentStarts: 4,
        storageDir: "/var/lib/rfboot/disks",
        consoleLogDir: "/var/lib/rfboot/console",
        hypervisors: ["qemu", "kvm"],
        pool: "rfboot",
        images: "path",
        upload: false,
        memoryReserveMiB: 256,
      },
    ]);
    expect(c.policies).toMatchObject({
      unknownDatapath: { action: "ignore" },
      leave: { action: "keep", graceSeconds: 30 },
      duplicateDatapath: "newest-wins",
    });
    expect(c.readiness).toEqual({
      consoleMarker: "RFBOOT-GUEST-BOOTED",
      portRegister: false,
      timeoutSeconds: 120,
    });
  });

  it("reads unquoted YAML versions 1.0 and 1.3 as the strings", () => {
    expect(parseConfig(`openflow: { versions: [1.0, 1.3, "1.5"] }`).openflow.versions).toEqual([
      "1.0",
      "1.3",
      "1.5",
    ]);
  });

  it("derives host directories from stateDir and hypervisors from the URI scheme", () => {
    const c = parseConfig(`
stateDir: /srv/rf
hosts:
  - { name: a, uri: "qemu+ssh://root@h1/system" }
  - { name: b, uri: "lxc:///system", storageDir: /data/disks }
  - { name: c, uri: "test+unix:///default", hypervisors: [test, test] }
`);
    expect(c.hosts.map((h) => [h.storageDir, h.consoleLogDir, h.hypervisors])).toEqual([
      ["/srv/rf/disks", "/srv/rf/console", ["qemu", "kvm"]],
      ["/data/disks", "/srv/rf/console", ["lxc"]],
      ["/srv/rf/disks", "/srv/rf/console", ["test"]],
    ]);
  });

  it("is deeply frozen", () => {
    const c = parseConfig(`datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }`);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.openflow.listen)).toBe(true);
    expect(Object.isFrozen(c.hosts[0])).toBe(true);
    expect(Object.isFrozen(c.datapaths[0])).toBe(true);
    const vm = listConfiguredVms(c)[0]!;
    expect(Object.isFrozen(vm.ports[0])).toBe(true);
    expect(Object.isFrozen(vm.settings.boot)).toBe(true);
    expect(() => {
      (c.openflow.listen as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe("datapath keys", () => {
  const entry = `{ name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 }`;
  it.each([
    [`"0x5"`, 5n],
    [`"5"`, 5n],
    [`5`, 5n],
    [`"0000000000000005"`, 5n],
    [`0000000000000005`, 5n],
    [`"00:00:00:00:00:00:00:05"`, 5n],
    [`"dec:5"`, 5n],
    [`"10"`, 16n],
    [`0x10`, 16n],
    [`"dec:10"`, 10n],
    [`"7266767372667673"`, 0x7266767372667673n],
    [`"0xFEDCBA9876543210"`, 0xfedcba9876543210n],
    [`"dec:18364758544493064720"`, 0xfedcba9876543210n],
  ])("%s -> %s", (key, dpid) => {
    const c = parseConfig(`datapaths:\n  ${key}: ${entry}\n`);
    expect(c.datapaths[0]!.dpid).toBe(dpid);
    expect(resolveDatapath(c, dpid)?.name).toBe("a");
  });

  it("accepts JSON with string keys", () => {
    const c = parseConfig(
      JSON.stringify({ datapaths: { "0x99": { name: "rfvm1", vmId: "12:a0:a0:a0:a0:a0", dataPorts: 2 } } }),
    );
    expect(c.datapaths[0]!.dpid).toBe(0x99n);
  });
});

describe("example configs in config/", () => {
  const files = readdirSync(join(REPO, "config")).filter((f) => /\.(ya?ml|json)$/.test(f));
  it("there are examples", () => {
    expect(files).toEqual(expect.arrayContaining(["rftest1.yaml", "rftest2.yaml", "example.yaml"]));
  });
  it.each(files)("%s loads and every VM's XML builds", async (f) => {
    const c = await loadConfig(join(REPO, "config", f));
    for (const vm of listConfiguredVms(c)) {
      for (const host of hostsFor(c, vm)) {
        expect(buildDomainXml(vm.describe(host))).toContain(`<name>${vm.name}</name>`);
      }
    }
  });

  it("rftest2.yaml is rftest2: dpids 5..8, rfvmA..D, 4/3/3/4 ports on dp0, kernel boot", async () => {
    const c = await loadConfig(join(REPO, "config/rftest2.yaml"));
    const vms = listConfiguredVms(c);
    expect(vms.map((v) => [v.dpid, v.name, v.vmMac, v.ports.length])).toEqual([
      [5n, "rfvmA", "02:a0:a0:a0:a0:a0", 4],
      [6n, "rfvmB", "02:b0:b0:b0:b0:b0", 3],
      [7n, "rfvmC", "02:c0:c0:c0:c0:c0", 3],
      [8n, "rfvmD", "02:d0:d0:d0:d0:d0", 4],
    ]);
    const a = vms[0]!;
    expect(a.ports.map((p) => [p.vmPort, p.dpPort, p.mac, p.hostDev])).toEqual([
      [1, 1, "02:a1:a1:a1:a1:a1", "rfvmA.1"],
      [2, 2, "02:a2:a2:a2:a2:a2", "rfvmA.2"],
      [3, 3, "02:a3:a3:a3:a3:a3", "rfvmA.3"],
      [4, 4, "02:a4:a4:a4:a4:a4", "rfvmA.4"],
    ]);
    const d = a.describe(c.hosts[0]!);
    expect(d.hypervisor).toEqual({ type: "qemu" });
    expect(d.boot).toEqual({
      type: "kernel",
      kernel: "/var/lib/rfboot/guest/vmlinuz",
      initrd: "/var/lib/rfboot/guest/initrd.gz",
      cmdline: "console=ttyS0 no_timer_check rfboot.name=rfvmA",
    });
    expect(d.interfaces[0]).toMatchObject({ type: "bridge", bridge: "rfbr0", mac: "02:a0:a0:a0:a0:a0" });
    expect(
      d.interfaces.slice(1).every((n) => n.type === "bridge" && n.bridge === "dp0" && n.virtualport),
    ).toBe(true);
    expect(c.policies.leave.action).toBe("keep");
  });
});

describe("loadConfig", () => {
  it("picks the format by extension and sniffs otherwise", async () => {
    const j = join(tmp, "c.json");
    writeFileSync(j, JSON.stringify({ mongo: { database: "rf" } }));
    expect((await loadConfig(j)).mongo.database).toBe("rf");
    const y = join(tmp, "c.conf");
    writeFileSync(y, "mongo:\n  database: rf2\n");
    expect((await loadConfig(y)).mongo.database).toBe("rf2");
    const s = join(tmp, "c2.conf");
    writeFileSync(s, '{"mongo": {"database": "rf3"}}');
    expect((await loadConfig(s)).mongo.database).toBe("rf3");
  });

  it("reports a missing file, a directory and a huge file as ConfigErrors", async () => {
    await expect(loadConfig(join(tmp, "nope.yaml"))).rejects.toThrow(/no such file/);
    await expect(loadConfig(tmp)).rejects.toThrow(/not a regular file/);
    const big = join(tmp, "big.yaml");
    writeFileSync(big, Buffer.alloc(4 * 1024 * 1024 + 1, 0x23));
    await expect(loadConfig(big)).rejects.toThrow(ConfigError);
    await expect(loadConfig(big)).rejects.toThrow(/limit is 4194304/);
  });
});

describe("profiles and overrides", () => {
  const yaml = `
hosts:
  - { name: q, uri: "qemu:///system" }
  - { name: l, uri: "lxc:///system" }
  - { name: q2, uri: "qemu+ssh://h2/system", hypervisors: [kvm] }
defaults:
  memoryMiB: 256
  boot: { type: kernel, kernel: /k/vmlinuz, initrd: /k/initrd, cmdline: "console=ttyS0 x={name}" }
  network: { management: { type: network, network: default } }
profiles:
  base: { vcpus: 2, lifecycle: { onCrash: restart } }
  big: { extends: base, memoryMiB: 1024, network: { data: { bridge: dp1 } } }
  disky: { boot: { type: disk }, disk: { image: "/img/{name}-base.qcow2" } }
  container: { hypervisor: lxc, boot: { type: init, init: /sbin/init, args: [--a, "b={dpid16}"], rootfs: "/srv/rootfs/{name}" } }
datapaths:
  "0x1": { name: plain, vmId: "02:00:00:00:00:10", dataPorts: 1 }
  "0x2": { name: bigvm, vmId: "02:00:00:00:00:20", dataPorts: 2, profile: big, vcpus: 8, boot: { cmdline: null } }
  "0x3": { name: diskvm, vmId: "02:00:00:00:00:30", dataPorts: 0, profile: disky, disk: { prepare: copy, format: raw } }
  "0x4": { name: ct, vmId: "02:00:00:00:00:40", portMap: [{ vmPort: 3, dpPort: 7 }, { vmPort: 1, dpPort: 9 }], profile: container }
  "0x5": { name: kvmvm, vmId: "02:00:00:00:00:50", dataPorts: 1, hypervisor: kvm, host: q2, profile: disky, disk: null, boot: { type: kernel, kernel: /k/vmlinuz } }
`;
  const c = parseConfig(yaml);
  const vm = (name: string) => findConfiguredVm(c, name)!;

  it("merges defaults, the profile chain and the VM's own settings", () => {
    expect(vm("plain").settings).toMatchObject({ vcpus: 1, memoryMiB: 256, hypervisor: "qemu" });
    expect(vm("plain").settings.boot).toEqual({
      type: "kernel",
      kernel: "/k/vmlinuz",
      initrd: "/k/initrd",
      cmdline: "console=ttyS0 x=plain",
    });
    const b = vm("bigvm");
    expect(b.settings).toMatchObject({ vcpus: 8, memoryMiB: 1024, lifecycle: { onCrash: "restart" } });
    expect(b.settings.network.data).toEqual({ bridge: "dp1", openvswitch: true });
    expect(b.settings.network.management).toEqual({ type: "network", network: "default" });
    expect(b.settings.boot).toEqual({ type: "kernel", kernel: "/k/vmlinuz", initrd: "/k/initrd" }); // null cleared cmdline
    expect(b.profile).toBe("big");
  });

  it("replaces a tagged object whose type changes, and substitutes placeholders in paths", () => {
    const d = vm("diskvm");
    expect(d.settings.boot).toEqual({ type: "disk" });
    expect(d.disk).toEqual({
      kind: "copy",
      base: "/img/diskvm-base.qcow2",
      baseFormat: "raw",
      format: "raw",
      fileName: "diskvm.img",
    });
    const plan = d.plan(c.hosts[0]!);
    expect(plan.disk?.path).toBe("/var/lib/rfboot/disks/diskvm.img");
    expect(plan.description.disks).toEqual([
      { source: { type: "file", path: "/var/lib/rfboot/disks/diskvm.img", format: "raw" } },
    ]);
    expect(plan.consoleLog).toBe("/var/lib/rfboot/console/diskvm.log");
  });

  it("builds lxc containers with a root filesystem, and gaps in a portMap keep NIC numbering", () => {
    const ct = vm("ct");
    expect(ct.hypervisor).toBe("lxc");
    expect(hostsFor(c, ct).map((h) => h.name)).toEqual(["l"]);
    expect(ct.ports.map((p) => [p.vmPort, p.dpPort, p.hostDev])).toEqual([
      [1, 9, "ct.1"],
      [3, 7, "ct.3"],
    ]);
    expect(ct.dataNics).toBe(3);
    const d = ct.describe(c.hosts[1]!);
    expect(d.boot).toEqual({ type: "init", init: "/sbin/init", args: ["--a", "b=0000000000000004"] });
    expect(d.filesystems).toEqual([{ type: "mount", source: "/srv/rootfs/ct", target: "/" }]);
    expect(d.interfaces.map((n) => n.target)).toEqual([undefined, "ct.1", "ct.2", "ct.3"]);
    expect(validateVmDescription(d).name).toBe("ct");
  });

  it("pins to a host and clears an inherited disk with null", () => {
    const k = vm("kvmvm");
    expect(k.hostPin).toBe("q2");
    expect(hostsFor(c, k).map((h) => h.name)).toEqual(["q2"]);
    expect(k.disk).toBeUndefined();
    expect(k.settings.boot).toEqual({ type: "kernel", kernel: "/k/vmlinuz" });
  });

  it("uses a qcow2 overlay under the host's storageDir by default", () => {
    const c2 = parseConfig(`
hosts: [{ name: h, uri: "qemu:///system", storageDir: /pool }]
datapaths: { "0x1": { name: d, vmId: "02:00:00:00:00:10", dataPorts: 1, boot: { type: disk }, disk: { image: /img/base.raw, format: raw } } }
`);
    const p = listConfiguredVms(c2)[0]!.plan(c2.hosts[0]!);
    expect(p.disk).toEqual({
      kind: "overlay",
      base: "/img/base.raw",
      baseFormat: "raw",
      format: "qcow2",
      fileName: "d.qcow2",
      path: "/pool/d.qcow2",
    });
    expect(p.description.disks).toEqual([
      {
        source: { type: "overlay", path: "/pool/d.qcow2", backing: { path: "/img/base.raw", format: "raw" } },
      },
    ]);
  });

  it("re-resolves with a hypervisor override, and refuses an impossible one", () => {
    const k = reresolveVm(c, vm("plain"), { hypervisor: "kvm" });
    expect(k.describe(c.hosts[0]!).hypervisor).toEqual({ type: "kvm" });
    expect(() => reresolveVm(c, vm("plain"), { hypervisor: "lxc" })).toThrow(ConfigError);
    expect(() => reresolveVm(c, vm("plain"), { hypervisor: "xen-pv" })).toThrow(
      /no configured host runs xen-pv|no host runs xen-pv/,
    );
  });
});

describe("configHash", () => {
  const base = `datapaths: { "0x5": { name: a, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }, "0x6": { name: b, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1 } }`;
  it("is stable across loads and key spellings, and changes with the VM", () => {
    const h = (yaml: string, dpid = 5n) => configHash(resolveDatapath(parseConfig(yaml), dpid)!);
    expect(h(base)).toBe(h(base));
    expect(h(base)).toBe(h(base.replace(`"0x5"`, `"0000000000000005"`)));
    expect(h(base)).toBe(h(`mongo: { database: other }\n${base}`)); // not a VM change
    expect(h(base)).not.toBe(h(base.replace("dataPorts: 2", "dataPorts: 3")));
    expect(h(base)).not.toBe(h(`defaults: { memoryMiB: 256 }\n${base}`));
    expect(h(base, 6n)).not.toBe(h(base));
  });
});

describe("unknown datapaths", () => {
  it("ignore and refuse give no VM", () => {
    expect(resolveDatapath(parseConfig(`datapaths: {}`), 9n)).toBeUndefined();
    const c = parseConfig(`policies: { unknownDatapath: { action: refuse } }`);
    expect(resolveDatapath(c, 9n)).toBeUndefined();
    expect(c.policies.unknownDatapath.action).toBe("refuse");
  });

  const c = parseConfig(`
profiles: { tiny: { memoryMiB: 64 } }
datapaths: { "0x5": { name: rfvm-5, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }
policies:
  unknownDatapath:
    action: template
    template: { name: "rfvm-{dpid}", profile: tiny, maxDataPorts: 3, vcpus: 2 }
`);

  it("derives a VM from the template with data ports from the switch's physical ports", () => {
    const vm = resolveDatapath(c, 0x2an, [4, 1, 0xfffe, 4, 2, 0xfffffffe, 9])!;
    expect(vm.source).toBe("template");
    expect(vm.name).toBe("rfvm-2a");
    expect(vm.vmMac).toBe("02:00:00:00:00:2a");
    expect(vm.vmId).toBe(templateVmId(0x2an));
    expect(vm.settings).toMatchObject({ memoryMiB: 64, vcpus: 2 });
    expect(vm.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
    expect(buildDomainXml(vm.describe(c.hosts[0]!))).toContain("rfvm-2a.3");
    // Deterministic.
    expect(configHash(resolveDatapath(c, 0x2an, [1, 2, 4])!)).toBe(configHash(vm));
  });

  it("gives large dpids hashed device names that fit IFNAMSIZ and a hashed locally administered vm_id", () => {
    const vm = resolveDatapath(c, 0xfedcba9876543210n, [1])!;
    expect(vm.name).toBe("rfvm-fedcba9876543210");
    expect(vm.ports[0]!.hostDev).toMatch(/^rf[0-9a-f]{8}\.1$/);
    expect(vm.vmMac.startsWith("06:")).toBe(true);
    expect(validateVmDescription(vm.describe(c.hosts[0]!)).name).toBe(vm.name);
  });

  it("refuses a template VM whose name clashes with a configured VM", () => {
    // The configured VM of dpid 5 is called rfvm-5, which the template would also produce for 0x5...
    // but 0x5 is configured, so no clash; a different dpid with the same name cannot exist (names embed the dpid).
    expect(resolveDatapath(c, 5n)!.source).toBe("configured");
    const clash = parseConfig(`
datapaths: { "0x5": { name: rfvm-6, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 1 } }
policies: { unknownDatapath: { action: template } }
`);
    expect(() => resolveDatapath(clash, 6n, [1])).toThrow(/name of the configured VM/);
  });
});

describe("isRemoteUri", () => {
  it("tells URIs that name a server from local ones, and sets a host's images default from it", () => {
    for (const u of ["qemu+tcp://10.0.0.2/system", "qemu+ssh://root@hostb/system", "qemu://h.example/system"])
      expect(isRemoteUri(u), u).toBe(true);
    for (const u of [
      "qemu:///system",
      "lxc:///system",
      "test:///default",
      "qemu+unix:///system?socket=/run/x/libvirt-sock",
      "qemu+tcp://localhost/system",
      "qemu+tcp://127.0.0.1:16509/system",
    ])
      expect(isRemoteUri(u), u).toBe(false);
    const c = parseConfig(
      JSON.stringify({
        hosts: [
          { name: "b", uri: "qemu+tcp://10.0.0.2/system" },
          { name: "a", uri: "qemu:///system" },
        ],
      }),
    );
    expect(c.hosts.map((h) => [h.name, h.images])).toEqual([
      ["b", "pool"],
      ["a", "path"],
    ]);
  });
});

describe("docs/routeflow.md", () => {
  it("its example config for a real deployment loads, and its VM's rows are rftest2's rfvmA", () => {
    const text = readFileSync(join(REPO, "docs/routeflow.md"), "utf8");
    const yaml = /## An example config for a real deployment\n\n```yaml\n([\s\S]*?)```/.exec(text)?.[1];
    expect(yaml).toBeDefined();
    const c = parseConfig(yaml!, { format: "yaml", source: "docs/routeflow.md" });
    const [vm] = listConfiguredVms(c);
    expect(vm?.name).toBe("rfvmA");
    expect(vm?.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
    ]);
    expect(c.policies.lateRows.action).toBe("reconnect");
  });
});
