import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  runInit,
  runWizard,
  settingsFromFlags,
  vmFromFlags,
  type WizardIO,
} from "../../../src/cli/commands/init.js";
import { UsageError } from "../../../src/common/errors.js";
import { listConfiguredVms, loadConfig } from "../../../src/provisioner/config/index.js";
import { REPO } from "../../helpers/env.js";

const tmp = mkdtempSync(join(tmpdir(), "rfbt-cfg-init-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** scripted answers the wizard's questions in order and records what it printed. */
function scripted(answers: string[]): WizardIO & { lines: string[]; prompts: string[] } {
  const lines: string[] = [];
  const prompts: string[] = [];
  return {
    lines,
    prompts,
    ask: async (p) => {
      prompts.push(p);
      return answers.shift();
    },
    say: (l) => lines.push(l),
  };
}

describe("the wizard's questions", () => {
  it("takes defaults on Enter: rfvmA, 02:a0:a0:a0:a0:a0, dpid 0x5, qemu, kernel boot", async () => {
    const io = scripted(Array(12).fill(""));
    const [vm] = await runWizard(io);
    expect(vm).toEqual({
      hypervisor: "qemu",
      name: "rfvmA",
      vmId: 0x02a0a0a0a0a0n,
      dpid: 5n,
      dataPorts: 2,
      arch: "x86_64",
      vcpus: 1,
      memoryMiB: 128,
      boot: {
        type: "kernel",
        kernel: "/var/lib/rfboot/guest/vmlinuz",
        initrd: "/var/lib/rfboot/guest/initrd.gz",
      },
    });
  });

  it("re-asks a wrong answer with the reason, each time", async () => {
    const io = scripted([
      "hyperv",
      "qemu", // hypervisor
      "-bad",
      "rfvmA", // name
      "2A0A0A0A0A0",
      "01:00:00:00:00:01",
      "02:a0:a0:a0:a0:a0", // vm_id: bare hex is ambiguous, multicast refused
      "zz",
      "0x5", // dpid
      "300",
      "4", // ports
      "amd64",
      "x86_64",
      "0",
      "2", // vcpus
      "8",
      "256", // memory
      "floppy",
      "kernel",
      "vmlinuz",
      "/boot/vmlinuz", // kernel must be absolute
      "-", // no initrd
      "maybe",
      "n",
    ]);
    const [vm] = await runWizard(io);
    expect(vm).toMatchObject({
      name: "rfvmA",
      dataPorts: 4,
      vcpus: 2,
      memoryMiB: 256,
      boot: { type: "kernel", kernel: "/boot/vmlinuz" },
    });
    expect(vm!.boot).not.toHaveProperty("initrd");
    const reasons = io.lines.filter((l) => l.startsWith("  ! "));
    expect(reasons).toHaveLength(12);
    expect(reasons[0]).toMatch(/answer one of: kvm, qemu, lxc/);
    expect(reasons[1]).toMatch(/A-Z a-z 0-9 _ \. -/);
    expect(reasons[2]).toMatch(/not a vm_id/);
    expect(reasons[3]).toMatch(/multicast/);
    expect(reasons[5]).toMatch(/from 0 to 256/);
    expect(reasons[9]).toMatch(/answer one of: kernel, image/);
    expect(reasons[10]).toMatch(/absolute path/);
    expect(reasons[11]).toMatch(/answer y or n/);
  });

  it("adds several VMs, continuing names, vm_ids and dpids, and refuses duplicates", async () => {
    const first = Array(12).fill("");
    const io = scripted([
      ...first.slice(0, 11),
      "y",
      "lxc",
      "rfvmA",
      "rfvmB",
      "02:a0:a0:a0:a0:a0",
      "",
      "0x5",
      "",
      "",
      "",
      "",
      "",
      "",
      "n",
    ]);
    const vms = await runWizard(io);
    expect(vms.map((v) => [v.name, v.vmId, v.dpid, v.hypervisor, v.boot.type])).toEqual([
      ["rfvmA", 0x02a0a0a0a0a0n, 5n, "qemu", "kernel"],
      ["rfvmB", 0x02b0b0b0b0b0n, 6n, "lxc", "rootfs"],
    ]);
    const reasons = io.lines.filter((l) => l.startsWith("  ! "));
    expect(reasons).toEqual([
      expect.stringMatching(/rfvmA is already the name of another VM/),
      expect.stringMatching(/already another VM's vm_id/),
      expect.stringMatching(/datapath 0x5 already has a VM/),
    ]);
  });

  it("stops with a UsageError when the input ends, writing nothing", async () => {
    const out = join(tmp, "eof.yaml");
    const input = new PassThrough();
    const output = new PassThrough();
    output.resume();
    input.end("qemu\nrfvmA\n");
    await expect(runInit({ out }, input, output)).rejects.toThrow(UsageError);
    expect(existsSync(out)).toBe(false);
  });
});

describe("rfboot init --yes", () => {
  it("writes a config from flags that loads", async () => {
    const out = join(tmp, "yes.yaml");
    const output = new PassThrough();
    output.resume();
    const o = {
      yes: true,
      out,
      hypervisor: "kvm",
      name: "edge1",
      vmId: "02:10:20:30:40:50",
      dpid: "0x2a",
      dataPorts: "3",
      vcpus: "2",
      memory: "256",
      kernel: "/opt/k",
      initrd: "/opt/i",
    };
    await runInit(o, new PassThrough(), output);
    const [vm] = listConfiguredVms(await loadConfig(out));
    expect(vm).toMatchObject({
      name: "edge1",
      dpid: 0x2an,
      vmMac: "02:10:20:30:40:50",
      hypervisor: "kvm",
      vcpus: 2,
      memoryMiB: 256,
    });
    expect(vm!.ports).toHaveLength(3);
    expect(vm!.settings.boot).toEqual({
      type: "kernel",
      kernel: "/opt/k",
      initrd: "/opt/i",
      cmdline: "console=ttyS0 no_timer_check rfboot.name=edge1",
    });
    await expect(runInit(o, new PassThrough(), output)).rejects.toThrow(
      /yes\.yaml exists; choose another file or pass --force/,
    );
    await runInit({ ...o, force: true, name: "edge2" }, new PassThrough(), output);
    expect(listConfiguredVms(await loadConfig(out))[0]!.name).toBe("edge2");
  });

  it("takes every config-wide answer from flags", async () => {
    const out = join(tmp, "yes-all.yaml");
    const output = new PassThrough();
    output.resume();
    await runInit(
      {
        yes: true,
        out,
        mode: "relay",
        listen: "0.0.0.0:6653",
        upstream: "10.0.0.2:6633",
        mongoUri: "mongodb://10.0.0.3:27017",
        hostUri: "qemu+tcp://127.0.0.1/system",
        remoteHost: ["rack2=qemu+ssh://root@rack2/system"],
        managementBridge: "mgmt0",
        dataBridge: "dp1",
        leave: "shutdown",
        consoleMarker: "-",
        readinessTimeout: "60",
      },
      new PassThrough(),
      output,
    );
    const c = await loadConfig(out);
    expect(c.openflow).toMatchObject({
      mode: "relay",
      listen: { host: "0.0.0.0", port: 6653 },
      upstream: { host: "10.0.0.2", port: 6633 },
    });
    expect(c.mongo.uri).toBe("mongodb://10.0.0.3:27017");
    expect(c.hosts.map((h) => [h.name, h.uri])).toEqual([
      ["qemu", "qemu+tcp://127.0.0.1/system"],
      ["rack2", "qemu+ssh://root@rack2/system"],
    ]);
    const [vm] = listConfiguredVms(c);
    expect(vm!.settings.network).toMatchObject({ management: { bridge: "mgmt0" }, data: { bridge: "dp1" } });
    expect(c.policies.leave.action).toBe("shutdown");
    expect(c.readiness).toMatchObject({ consoleMarker: null, timeoutSeconds: 60 });
  });

  it("starts from a RouteFlow CSV with --csv (its port pairs kept), and explains a missing directory", async () => {
    const csv = join(tmp, "yes.csv");
    writeFileSync(csv, "vm_id,vm_port,ct_id,dp_id,dp_port\n12A0A0A0A0A0,1,0,5,1\n12A0A0A0A0A0,2,0,5,3\n");
    const out = join(tmp, "yes-csv.yaml");
    const output = new PassThrough();
    output.resume();
    await runInit({ yes: true, out, csv, memory: "256" }, new PassThrough(), output);
    const [vm] = listConfiguredVms(await loadConfig(out));
    expect(vm).toMatchObject({ dpid: 5n, vmMac: "12:a0:a0:a0:a0:a0", memoryMiB: 256 });
    expect(vm!.ports.map((p) => [p.vmPort, p.dpPort])).toEqual([
      [1, 1],
      [2, 3],
    ]);
    const ct = join(tmp, "yes-csv-lxc.yaml");
    await runInit({ yes: true, out: ct, csv, hypervisor: "lxc" }, new PassThrough(), output);
    expect(listConfiguredVms(await loadConfig(ct))[0]!.settings.boot).toMatchObject({
      type: "init",
      rootfs: "/var/lib/rfboot/rootfs/rfvm1",
    });
    await expect(
      runInit({ yes: true, out: ct, force: true, csv, name: "x" }, new PassThrough(), output),
    ).rejects.toThrow(/--name: with --csv, each VM's name, vm_id, dpid and ports come from the CSV/);
    await expect(
      runInit({ yes: true, out: join(tmp, "nope/dir/c.yaml") }, new PassThrough(), output),
    ).rejects.toThrow(/--out: directory .*nope\/dir does not exist; create it first \(mkdir -p /);
    await expect(runInit({ yes: true, out: tmp }, new PassThrough(), output)).rejects.toThrow(
      /is a directory; give a file name in it/,
    );
  });

  it.each([
    [{ mode: "proxy" }, /--mode "proxy": answer one of: listen, relay/],
    [{ listen: "6653" }, /--listen "6653": write host:port/],
    [{ upstream: "127.0.0.1:6633" }, /--upstream goes with --mode relay/],
    [{ mode: "relay", upstream: "127.0.0.1:6653" }, /a loop/],
    [{ mongoUri: "http://x" }, /--mongo-uri "http:\/\/x": the MongoDB URI must be a MongoDB URI/],
    [{ hostUri: "/var/run/libvirt" }, /--host-uri .*libvirt URI like/],
    [{ remoteHost: ["rack2"] }, /--remote-host "rack2": write NAME=URI/],
    [{ remoteHost: ["qemu=qemu:///system"] }, /already a host/],
    [{ dataBridge: "averyveryverylongbridge" }, /--data-bridge .*IFNAMSIZ/],
    [{ leave: "hibernate" }, /--leave "hibernate": answer one of: keep, shutdown, destroy, suspend/],
    [{ consoleMarker: "(a+)+" }, /--console-marker .*nested quantifiers/],
    [{ readinessTimeout: "0" }, /--readiness-timeout "0"/],
  ])("refuses bad config-wide flags %j", (flags, message) => {
    expect(() => settingsFromFlags({ yes: true, ...flags }, [vmFromFlags({ yes: true })])).toThrow(message);
  });

  it("makes lxc and disk-image VMs", async () => {
    const lxc = vmFromFlags({ yes: true, hypervisor: "lxc", rootfs: "/srv/ct" });
    expect(lxc.boot).toEqual({ type: "rootfs", rootfs: "/srv/ct", init: "/sbin/init" });
    const img = vmFromFlags({ yes: true, image: "/img/base.qcow2" });
    expect(img.boot).toEqual({ type: "image", image: "/img/base.qcow2", format: "qcow2" });
    for (const [name, vm] of [
      ["lxc.yaml", { hypervisor: "lxc", rootfs: "/srv/ct" }],
      ["img.yaml", { image: "/img/base.raw" }],
    ] as const) {
      const out = join(tmp, name);
      const output = new PassThrough();
      output.resume();
      await runInit({ yes: true, out, ...vm }, new PassThrough(), output);
      const [loaded] = listConfiguredVms(await loadConfig(out));
      expect(loaded!.name).toBe("rfvmA");
    }
  });

  it.each([
    [{ hypervisor: "vbox" }, /--hypervisor "vbox": answer one of/],
    [{ vcpus: "0" }, /--vcpus "0": vCPUs must be from 1/],
    [{ memory: "lots" }, /--memory "lots"/],
    [{ vmId: "ff:ff:ff:ff:ff:ff" }, /--vm-id .*multicast/],
    [{ dpid: "0xzz" }, /--dpid "0xzz"/],
    [{ name: "a b" }, /--name "a b"/],
    [{ kernel: "k" }, /--kernel "k": path must be an absolute path/],
    [{ kernel: "/k", image: "/i" }, /only one of --kernel, --image/],
    [{ rootfs: "/r" }, /--rootfs is for --hypervisor lxc/],
    [{ dataPorts: "999" }, /--data-ports "999"/],
  ])("refuses bad flags %j", (flags, message) => {
    expect(() => vmFromFlags({ yes: true, ...flags })).toThrow(message);
  });
});

/** drive runs a command in a real pseudo-terminal through test/unit/cli/pty_drive.py. */
async function drive(
  args: string[],
  steps: [string, string][],
): Promise<{ transcript: string; exit: number | null; error: string | null }> {
  const spec = JSON.stringify({
    cmd: ["node", "--import", "tsx", "src/cli/main.ts", ...args],
    cwd: REPO,
    steps,
    timeout: 60,
  });
  const child = promisify(execFile)("python3", [join(REPO, "test/unit/cli/pty_drive.py")], {
    timeout: 90_000,
  });
  child.child.stdin!.end(spec);
  const { stdout } = await child;
  return JSON.parse(stdout) as { transcript: string; exit: number | null; error: string | null };
}

describe("rfboot init over a real terminal (pty)", () => {
  it("asks, rejects a wrong answer with the reason, re-asks, and writes a config that loads", async () => {
    const out = join(tmp, "pty.yaml");
    const r = await drive(
      ["init", "--out", out],
      [
        ["Start from a RouteFlow mapping CSV .*\\[-\\]: ", "\r"],
        ["Hypervisor .*\\[qemu\\]: ", "kvmm\r"],
        ["answer one of: kvm, qemu, lxc, xen-pv, xen-hvm, test; try again[\\s\\S]*Hypervisor", "\r"],
        ["VM name \\[rfvmA\\]: ", "rf vm\r"],
        ["may|A-Z a-z 0-9[\\s\\S]*VM name", "rfvmA\r"],
        ["vm_id.*\\]: ", "\r"],
        ["Datapath id.*\\[0x5\\]: ", "0x5\r"],
        ["Data ports.*\\[2\\]: ", "4\r"],
        ["Architecture", "\r"],
        ["vCPUs", "\r"],
        ["Memory", "\r"],
        ["Boot from", "\r"],
        ["Kernel", "\r"],
        ["Initrd", "\r"],
        ["Add another VM\\? \\(y/n\\) \\[n\\]: ", "y\r"],
        ["Hypervisor .*\\[qemu\\]: ", "\r"],
        ["VM name \\[rfvmB\\]: ", "\r"],
        ["vm_id.*\\[02:b0:b0:b0:b0:b0\\]: ", "\r"],
        ["Datapath id.*\\[0x6\\]: ", "\r"],
        ["Data ports.*\\[4\\]: ", "3\r"],
        ["Architecture", "\r"],
        ["vCPUs", "\r"],
        ["Memory", "\r"],
        ["Boot from", "\r"],
        ["Kernel", "\r"],
        ["Initrd", "\r"],
        ["Add another VM", "n\r"],
        ["OpenFlow mode: listen .* or relay .*\\[listen\\]: ", "relay\r"],
        ["Listen for switches on \\(host:port\\) \\[127\\.0\\.0\\.1:6653\\]: ", "\r"],
        ["Upstream controller, rfproxy \\(host:port\\) \\[127\\.0\\.0\\.1:6633\\]: ", "127.0.0.1:6653\r"],
        ["a loop[\\s\\S]*Upstream controller", "\r"],
        ["MongoDB URI .*\\[mongodb://127\\.0\\.0\\.1:27017\\]: ", "http://db\r"],
        ["must be a MongoDB URI[\\s\\S]*MongoDB URI", "mongodb://10.0.0.9:27017\r"],
        ["libvirt URI for qemu VMs \\[qemu:///system\\]: ", "\r"],
        ["Add a remote libvirt host\\? \\(y/n\\) \\[n\\]: ", "y\r"],
        ["Host name \\[remote\\]: ", "rack2\r"],
        ["Its libvirt URI \\[qemu\\+ssh://root@rack2/system\\]: ", "\r"],
        ["Add a remote libvirt host", "n\r"],
        ["Management bridge for eth0 \\[rfbr0\\]: ", "\r"],
        ["Data bridge .*\\[dp0\\]: ", "\r"],
        ["When a switch leaves, its VM \\(keep, shutdown, destroy, suspend\\) \\[keep\\]: ", "suspend\r"],
        ["Ready when the console prints .*\\[RFBOOT-GUEST-BOOTED\\]: ", "\r"],
        ["Readiness timeout \\(seconds\\) \\[120\\]: ", "\r"],
        [
          "Summary \\(to .*pty\\.yaml\\):[\\s\\S]*VM rfvmA: datapath 0x5[\\s\\S]*OpenFlow: relay on 127\\.0\\.0\\.1:6653, forwarding to 127\\.0\\.0\\.1:6633[\\s\\S]*Hosts: qemu \\(qemu:///system\\), rack2[\\s\\S]*When a switch leaves: suspend[\\s\\S]*Write it\\? \\(y/n\\) \\[y\\]: ",
          "\r",
        ],
      ],
    );
    expect(r.error).toBeNull();
    expect(r.exit).toBe(0);
    expect(r.transcript).toContain(`wrote ${out} (2 VMs)`);
    const config = await loadConfig(out);
    expect(listConfiguredVms(config).map((v) => [v.name, v.dpid, v.vmMac, v.ports.length])).toEqual([
      ["rfvmA", 5n, "02:a0:a0:a0:a0:a0", 4],
      ["rfvmB", 6n, "02:b0:b0:b0:b0:b0", 3],
    ]);
    expect(readFileSync(out, "utf8")).toMatch(/^# Written by rfboot init/);
    expect(config.openflow).toMatchObject({ mode: "relay", upstream: { host: "127.0.0.1", port: 6633 } });
    expect(config.mongo.uri).toBe("mongodb://10.0.0.9:27017");
    expect(config.hosts.map((h) => [h.name, h.uri])).toEqual([
      ["qemu", "qemu:///system"],
      ["rack2", "qemu+ssh://root@rack2/system"],
    ]);
    expect(config.policies.leave.action).toBe("suspend");

    // A second run must not overwrite it.
    const again = await drive(["init", "--out", out, "--yes"], []);
    expect(again.exit).toBe(2);
    expect(again.transcript).toMatch(/exists; choose another file or pass --force to overwrite it/);
  });

  it("checks the target first, starts from a CSV, and writes nothing when the summary is declined", async () => {
    const taken = join(tmp, "taken.yaml");
    writeFileSync(taken, "# someone's config\n");
    const csv = join(tmp, "map.csv");
    writeFileSync(csv, "vm_id,vm_port,ct_id,dp_id,dp_port\n12A0A0A0A0A0,1,0,5,1\n12A0A0A0A0A0,2,0,5,3\n");
    const target = join(tmp, "from-csv.yaml");
    const r = await drive(
      ["init"],
      [
        ["Write the config to \\[rfboot\\.yaml\\]: ", `${taken}\r`],
        [
          "taken\\.yaml exists; choose another file or pass --force[\\s\\S]*Write the config to",
          `${tmp}/no/such/dir/c.yaml\r`,
        ],
        [
          "directory .*no/such/dir does not exist; create it first \\(mkdir -p [\\s\\S]*Write the config to",
          `${target}\r`,
        ],
        ["Start from a RouteFlow mapping CSV .*: ", `${tmp}/missing.csv\r`],
        ["cannot read .*missing\\.csv: no such file; try again[\\s\\S]*Start from a RouteFlow", `${taken}\r`],
        ["taken\\.yaml[\\s\\S]*try again[\\s\\S]*Start from a RouteFlow", `${csv}\r`],
        [
          "The CSV has 1 VM: rfvm1 \\(datapath 0x5, 2 ports\\)[\\s\\S]*VM 1: rfvm1 \\(from the CSV\\)[\\s\\S]*Hypervisor .*: ",
          "\r",
        ],
        ["Architecture \\(x86_64, ", "\r"],
        ["vCPUs", "\r"],
        ["Memory", "\r"],
        ["Boot from", "\r"],
        ["Kernel", "\r"],
        ["Initrd", "\r"],
        ["OpenFlow mode", "\r"],
        ["Listen for switches", "\r"],
        ["MongoDB URI", "\r"],
        ["libvirt URI for qemu", "\r"],
        ["Add a remote libvirt host", "\r"],
        ["Management bridge", "\r"],
        ["Data bridge", "\r"],
        ["When a switch leaves", "\r"],
        ["Ready when the console prints", "-\r"],
        ["Readiness timeout", "\r"],
        [
          "VM rfvm1: datapath 0x5, vm_id 12:a0:a0:a0:a0:a0, 2 data ports[\\s\\S]*ready: no console check[\\s\\S]*Write it\\? \\(y/n\\) \\[y\\]: ",
          "n\r",
        ],
      ],
    );
    expect(r, r.transcript).toMatchObject({ exit: 0, error: null });
    expect(r.transcript).toMatch(/nothing written/);
    expect(existsSync(target)).toBe(false);
    expect(readFileSync(taken, "utf8")).toBe("# someone's config\n");
  });

  it("Ctrl-C cancels and writes nothing", async () => {
    const out = join(tmp, "cancel.yaml");
    writeFileSync(join(tmp, "marker"), "");
    const r = await drive(["init", "--out", out], [["Start from a RouteFlow", "\u0003"]]);
    expect(r, r.transcript).toMatchObject({ exit: 2, error: null });
    expect(r.transcript).toMatch(/cancelled or its input ended; nothing written/);
    expect(existsSync(out)).toBe(false);
  });
});
