/**
 * `rfboot vm list|start|stop|remove` and `rfboot hosts` against two private libvirtd hosts (test driver) plus
 * one unreachable host, through the real CLI entry point.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { describeWith } from "../helpers/env.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

/** cli runs the real CLI entry point in-process (a process per call costs seconds of transpiling). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array) => (
    (stdout += String(c)),
    true
  )) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => (
    (stderr += String(c)),
    true
  )) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

describeWith(["libvirt", "root"], "rfboot vm / hosts CLI on private libvirtd hosts", () => {
  let hosts: LibvirtTestHost[] = [];
  let cfg = "";
  const C = () => ["--config", cfg];

  beforeAll(async () => {
    hosts = await startLibvirtHosts(2, { prefix: "rfbtv-cli" });
    const dir = mkdtempSync(join(tmpdir(), "rfbtv-cli-"));
    cfg = join(dir, "rfboot.yaml");
    writeFileSync(
      cfg,
      [
        `mongo: { uri: "mongodb://127.0.0.1:27017" }`,
        `hosts:`,
        `  - { name: h1, uri: "${hosts[0]!.testUri}", maxVms: 1, memoryMiB: 4096 }`,
        `  - { name: h2, uri: "${hosts[1]!.testUri}", maxVms: 4 }`,
        `defaults:`,
        `  hypervisor: test`,
        `  memoryMiB: 64`,
        `  network: { management: { type: network, network: default } }`,
        `datapaths:`,
        `  "0x5": { name: rfbtv-cliA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }`,
        `  "0x6": { name: rfbtv-cliB, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1, host: h1 }`,
        ``,
      ].join("\n"),
    );
  });
  afterAll(async () => {
    await stopLibvirtHosts(hosts);
  });

  it("hosts reports reachability and capacity", async () => {
    const r = await cli("hosts", "--json", ...C());
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout).hosts as {
      name: string;
      reachable: boolean;
      maxVms: number;
      vms: unknown[];
      otherDomains: number;
    }[];
    expect(rows.map((h) => [h.name, h.reachable, h.maxVms, h.vms.length])).toEqual([
      ["h1", true, 1, 0],
      ["h2", true, 4, 0],
    ]);
    // The test driver's own preloaded domain is not rfboot's.
    expect(rows.every((h) => h.otherDomains === 1)).toBe(true);
  });

  it("vm start places by capacity and pin, adopts on a second start", async () => {
    const a = await cli("vm", "start", "rfbtv-cliA", ...C());
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^rfbtv-cliA: defined\+started on h2 \[placement: least-loaded\]/); // h1 has room for 1: fuller ratio
    const b = await cli("vm", "start", "rfbtv-cliB", ...C());
    expect(b.stdout).toMatch(/^rfbtv-cliB: defined\+started on h1 \[placement: pinned\]/);
    const again = await cli("vm", "start", "rfbtv-cliA", ...C());
    expect(again.stdout).toMatch(/^rfbtv-cliA: adopted on h2 \[placement: existing\]/);
  });

  it("vm stop --mode suspend then start restores; vm list shows state; remove undefines", async () => {
    expect((await cli("vm", "stop", "rfbtv-cliA", "--mode", "suspend", ...C())).stdout).toBe(
      "rfbtv-cliA: saved on h2\n",
    );
    const l = JSON.parse((await cli("vm", "list", "--json", ...C())).stdout).vms as {
      name: string;
      host: string;
      state: string;
      managedSave: boolean;
    }[];
    expect(l.map((v) => [v.name, v.host, v.state, v.managedSave])).toEqual([
      ["rfbtv-cliA", "h2", "shutoff", true],
      ["rfbtv-cliB", "h1", "running", false],
    ]);
    expect((await cli("vm", "start", "rfbtv-cliA", ...C())).stdout).toMatch(
      /started \(restored from saved state\) on h2/,
    );
    expect((await cli("vm", "remove", "rfbtv-cliB", ...C())).stdout).toBe("rfbtv-cliB: removed from h1\n");
    const table = (await cli("vm", "list", ...C())).stdout;
    expect(table.split("\n")[0]).toMatch(/^NAME\s+DPID\s+HOST\s+STATE/);
    expect(table).toMatch(/rfbtv-cliB\s+0000000000000006\s+-\s+undefined/);
    expect((await cli("vm", "remove", "rfbtv-cliA", ...C())).code).toBe(0);
  });

  it("bad input exits 2 with one line; an unreachable host makes `hosts` exit 1", async () => {
    const nosuch = await cli("vm", "start", "nosuch", ...C());
    expect(nosuch.code).toBe(2);
    expect(nosuch.stderr).toMatch(/no VM named "nosuch" .*configured: rfbtv-cliA, rfbtv-cliB/);
    expect((await cli("vm", "stop", "rfbtv-cliA", "--mode", "bogus", ...C())).code).toBe(2);
    const bad = join(mkdtempSync(join(tmpdir(), "rfbtv-cli-")), "bad.yaml");
    writeFileSync(
      bad,
      `mongo: { uri: "mongodb://127.0.0.1:27017" }\nhosts:\n  - { name: gone, uri: "test+unix:///default?socket=/run/rfbt-hosts/none/sock", maxVms: 2 }\n`,
    );
    const h = await cli("hosts", ...["--config", bad]);
    expect(h.code).toBe(1);
    expect(h.stdout).toMatch(/gone\s+NO/);
    expect(h.stderr).toMatch(/unreachable libvirt host\(s\): gone/);
  });
});
