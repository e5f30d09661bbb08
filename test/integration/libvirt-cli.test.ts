/**
 * `rfboot vm list|start|stop|remove` and `rfboot hosts` against two private libvirtd hosts (test driver) plus
 * one unreachable host, through the real CLI entry point; `vm start` and `vm remove` keep FerretDB's
 * `rfconfig` rows and rfboot's records (a test-unique database), and leave rows RouteFlow's loader wrote alone.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { MONGO_URI, describeWith } from "../helpers/env.js";
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

const TAG = randomBytes(3).toString("hex");
/** DB is this run's database; DB_DUP one whose `rfconfig` held duplicates before rfboot came (no unique indexes). */
const DB = `rfbtv_cli_${TAG}`;
const DB_DUP = `rfbtv_clid_${TAG}`;
const PREFIX = "rfbtvcli";
const VM_A = "2888912904352"; // 02:a0:a0:a0:a0:a0
const VM_B = "2957901869232"; // 02:b0:b0:b0:b0:b0
const VM_C = String(0x02c0c0c0c0c0);

/** Row is an `rfconfig` document without its _id. */
type Row = { vm_id: unknown; vm_port: unknown; ct_id: unknown; dp_id: unknown; dp_port: unknown };
const row = (vm_id: string, vm_port: number, dp_id: number, dp_port: number): Row => ({
  vm_id,
  vm_port: String(vm_port),
  ct_id: "0",
  dp_id: String(dp_id),
  dp_port: String(dp_port),
});

describeWith(["libvirt", "mongo", "root"], "rfboot vm / hosts CLI on private libvirtd hosts", () => {
  let hosts: LibvirtTestHost[] = [];
  let cfg = "";
  let cfgDup = "";
  let cfgDown = "";
  let mongo: MongoClient;
  const C = () => ["--config", cfg];
  const rows = async (db = DB): Promise<Row[]> =>
    mongo
      .db(db)
      .collection<Row>("rfconfig")
      .find({}, { projection: { _id: 0 } })
      .toArray();
  const record = (dpidHex: string, db = DB) =>
    mongo.db(db).collection<{ _id: string }>(`${PREFIX}_vms`).findOne({ _id: dpidHex });
  /** sorted orders rows for comparison. */
  const sorted = (xs: Row[]) => [...xs].map((r) => JSON.stringify(r)).sort();

  beforeAll(async () => {
    mongo = await MongoClient.connect(MONGO_URI, { serverSelectionTimeoutMS: 5_000 });
    hosts = await startLibvirtHosts(2, { prefix: "rfbtv-cli" });
    const dir = mkdtempSync(join(tmpdir(), "rfbtv-cli-"));
    const yaml = (mongoLine: string, datapaths: string[]) =>
      [
        mongoLine,
        `hosts:`,
        `  - { name: h1, uri: "${hosts[0]!.testUri}", maxVms: 1, memoryMiB: 4096 }`,
        `  - { name: h2, uri: "${hosts[1]!.testUri}", maxVms: 4 }`,
        `defaults:`,
        `  hypervisor: test`,
        `  memoryMiB: 64`,
        `  network: { management: { type: network, network: default } }`,
        `datapaths:`,
        ...datapaths,
        ``,
      ].join("\n");
    cfg = join(dir, "rfboot.yaml");
    writeFileSync(
      cfg,
      yaml(`mongo: { uri: "${MONGO_URI}", database: ${DB}, collectionPrefix: ${PREFIX} }`, [
        `  "0x5": { name: rfbtv-cliA, vmId: "02:a0:a0:a0:a0:a0", dataPorts: 2 }`,
        `  "0x6": { name: rfbtv-cliB, vmId: "02:b0:b0:b0:b0:b0", dataPorts: 1, host: h1 }`,
      ]),
    );
    cfgDup = join(dir, "dup.yaml");
    writeFileSync(
      cfgDup,
      yaml(`mongo: { uri: "${MONGO_URI}", database: ${DB_DUP}, collectionPrefix: ${PREFIX} }`, [
        `  "0x7": { name: rfbtv-cliC, vmId: "02:c0:c0:c0:c0:c0", dataPorts: 1, host: h2 }`,
      ]),
    );
    // Port 1 refuses connections: MongoDB unreachable.
    cfgDown = join(dir, "down.yaml");
    writeFileSync(
      cfgDown,
      yaml(`mongo: { uri: "mongodb://127.0.0.1:1", database: ${DB}, collectionPrefix: ${PREFIX} }`, [
        `  "0x8": { name: rfbtv-cliD, vmId: "02:d0:d0:d0:d0:d0", dataPorts: 1, host: h2 }`,
      ]),
    );
  });
  afterAll(async () => {
    await stopLibvirtHosts(hosts);
    for (const db of [DB, DB_DUP])
      await mongo
        ?.db(db)
        .dropDatabase()
        .catch(() => undefined);
    await mongo?.close();
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

  it("vm start wrote the rfconfig rows (decimal strings) and the records; a rerun adds no row", async () => {
    const want = [row(VM_A, 1, 5, 1), row(VM_A, 2, 5, 2), row(VM_B, 1, 6, 1)];
    expect(sorted(await rows())).toEqual(sorted(want));
    for (const r of await rows()) for (const v of Object.values(r)) expect(typeof v).toBe("string");
    expect(await record("0000000000000005")).toMatchObject({
      vmName: "rfbtv-cliA",
      vmId: VM_A,
      host: "h2",
      state: "running",
      dpid: "5",
    });
    expect(await record("0000000000000006")).toMatchObject({ vmName: "rfbtv-cliB", host: "h1" });
    const r = await cli("vm", "start", "rfbtv-cliB", ...C());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /rfbtv-cliB: 1 rfconfig row\(s\) in rfbtv_cli_\w+\.rfconfig \(vm_id 2957901869232\)/,
    );
    expect(sorted(await rows())).toEqual(sorted(want));
    const boots = await mongo.db(DB).collection(`${PREFIX}_events`).countDocuments({ kind: "boot" });
    expect(boots).toBe(4);
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
    // Rows RouteFlow's loader would insert: another VM's, and one more of B's VM on a port rfboot does not map.
    const foreign = [row("12345", 1, 99, 1), row(VM_B, 7, 6, 7)];
    await mongo
      .db(DB)
      .collection("rfconfig")
      .insertMany(foreign.map((x) => ({ ...x })));
    const rm = await cli("vm", "remove", "rfbtv-cliB", ...C());
    expect(rm.code).toBe(0);
    expect(rm.stdout).toBe(
      "rfbtv-cliB: removed from h1\n" +
        `rfbtv-cliB: record ${PREFIX}_vms/0000000000000006 removed; 1 of 1 rfconfig row(s) removed (database ${DB})\n`,
    );
    expect(await record("0000000000000006")).toBeNull();
    expect(sorted(await rows())).toEqual(sorted([row(VM_A, 1, 5, 1), row(VM_A, 2, 5, 2), ...foreign]));
    const ev = await mongo.db(DB).collection(`${PREFIX}_events`).findOne({ kind: "remove" });
    expect(ev).toMatchObject({ dpid: "0000000000000006", vm: "rfbtv-cliB" });
    const table = (await cli("vm", "list", ...C())).stdout;
    expect(table.split("\n")[0]).toMatch(/^NAME\s+DPID\s+HOST\s+STATE/);
    expect(table).toMatch(/rfbtv-cliB\s+0000000000000006\s+-\s+undefined/);
    // --keep-records leaves MongoDB as it was.
    const keep = await cli("vm", "remove", "rfbtv-cliA", "--keep-records", ...C());
    expect(keep.code).toBe(0);
    expect(keep.stdout).toBe("rfbtv-cliA: removed from h2\n");
    expect(await record("0000000000000005")).toMatchObject({ vmName: "rfbtv-cliA" });
    expect(sorted(await rows())).toEqual(sorted([row(VM_A, 1, 5, 1), row(VM_A, 2, 5, 2), ...foreign]));
    // With the domain gone, a rerun removes only what is left in MongoDB; then there is nothing to remove.
    const rerun = await cli("vm", "remove", "rfbtv-cliA", ...C());
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(
      /^rfbtv-cliA: not defined on any host\nrfbtv-cliA: record .* 2 of 2 rfconfig/,
    );
    expect(await record("0000000000000005")).toBeNull();
    expect(sorted(await rows())).toEqual(sorted(foreign));
    const none = await cli("vm", "remove", "rfbtv-cliA", ...C());
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(
      /not defined on any host and MongoDB holds nothing rfboot wrote for it: nothing to remove/,
    );
    expect(sorted(await rows())).toEqual(sorted(foreign));
  });

  it("without unique indexes, vm remove deletes one copy of each row: an identical loader's copy stays", async () => {
    // A loader appended its CSV twice before rfboot came: duplicates, so rfboot works without unique indexes.
    const dup = row("12345", 1, 99, 1);
    await mongo
      .db(DB_DUP)
      .collection("rfconfig")
      .insertMany([{ ...dup }, { ...dup }]);
    expect((await cli("vm", "start", "rfbtv-cliC", "--config", cfgDup)).code).toBe(0);
    const c1 = row(VM_C, 1, 7, 1);
    expect(sorted(await rows(DB_DUP))).toEqual(sorted([dup, dup, c1]));
    await mongo
      .db(DB_DUP)
      .collection("rfconfig")
      .insertOne({ ...c1 });
    const rm = await cli("vm", "remove", "rfbtv-cliC", "--config", cfgDup);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(/1 of 1 rfconfig row\(s\) removed/);
    expect(sorted(await rows(DB_DUP))).toEqual(sorted([dup, dup, c1]));
    // Started without records: no record shows rfboot wrote C's row, so the one there (the loader's) stays.
    expect((await cli("vm", "start", "rfbtv-cliC", "--no-records", "--config", cfgDup)).code).toBe(0);
    const rm2 = await cli("vm", "remove", "rfbtv-cliC", "--config", cfgDup);
    expect(rm2.code).toBe(0);
    expect(rm2.stdout).toMatch(/no record rfbtvcli_vms\/0000000000000007; rfconfig rows left alone/);
    expect(sorted(await rows(DB_DUP))).toEqual(sorted([dup, dup, c1]));
  });

  it("MongoDB unreachable: vm start starts nothing; --no-records starts; vm remove removes the domain, exits 1", async () => {
    const list = async () =>
      (
        JSON.parse((await cli("vm", "list", "--json", "--config", cfgDown)).stdout).vms as { state: string }[]
      )[0]!.state;
    const s = await cli("vm", "start", "rfbtv-cliD", "--config", cfgDown);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(
      /rfbtv-cliD was not started: MongoDB at mongodb:\/\/127\.0\.0\.1:1 \(database rfbtv_cli_\w+\) did not confirm its 1 rfconfig row.*--no-records/,
    );
    expect(await list()).toBe("undefined");
    const n = await cli("vm", "start", "rfbtv-cliD", "--no-records", "--config", cfgDown);
    expect(n.code).toBe(0);
    expect(n.stdout).not.toMatch(/rfconfig/);
    expect(await list()).toBe("running");
    const rm = await cli("vm", "remove", "rfbtv-cliD", "--config", cfgDown);
    expect(rm.code).toBe(1);
    expect(rm.stdout).toBe("rfbtv-cliD: removed from h2\n");
    expect(rm.stderr).toMatch(
      /rfbtv-cliD: the domain is removed, but its record and rfconfig rows were not removed \(.*unreachable.*\) in MongoDB at mongodb:\/\/127\.0\.0\.1:1 .*rerun `rfboot vm remove rfbtv-cliD --config /,
    );
    expect(await list()).toBe("undefined");
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
