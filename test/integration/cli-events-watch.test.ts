/**
 * `rfboot events` and `rfboot status --watch` as an operator runs them, against FerretDB: the event log
 * written through the store, read back oldest first, by dpid, since a time, as JSON lines, and followed while
 * new events are written (Ctrl-C ends it with 0); `status --watch` on a real pseudo-terminal (redrawn in place
 * as a record changes) and through a pipe (one table per change).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { silentLogger } from "../../src/common/log.js";
import { MongoStore } from "../../src/provisioner/index.js";
import { MONGO_URI, REPO, describeWith } from "../helpers/env.js";
import { sleep, until } from "../helpers/real.js";

const RFBOOT = join(REPO, "bin", "rfboot");
const PTY = join(REPO, "test", "unit", "cli", "pty_drive.py");
const TAG = randomBytes(3).toString("hex");
const DB = `rfbt_ev_${TAG}`;
const A = `${TAG}0a`.padStart(16, "0");
const B = `${TAG}0b`.padStart(16, "0");
const VM_A = `rfbtev${TAG}a`;

describeWith(["mongo"], "rfboot events and status --watch on FerretDB", () => {
  let dir: string;
  let cfg: string;
  let store: MongoStore;
  let mongo: MongoClient;
  const t0 = new Date(Date.now() - 3_600_000);
  const at = (min: number) => new Date(t0.getTime() + min * 60_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rfbt-ev-"));
    cfg = join(dir, "rfboot.yaml");
    writeFileSync(
      cfg,
      `stateDir: ${dir}/state
mongo: { uri: "${MONGO_URI}", database: ${DB} }
hosts:
  - { name: h1, uri: "test:///default", maxVms: 3 }
defaults: { hypervisor: test, memoryMiB: 64 }
datapaths:
  "0x${A}": { name: ${VM_A}, vmId: "02:e5:00:${TAG.slice(0, 2)}:${TAG.slice(2, 4)}:01", dataPorts: 1 }
`,
    );
    store = await MongoStore.open({ uri: MONGO_URI, database: DB, prefix: "rfboot_", logger: silentLogger });
    mongo = await MongoClient.connect(MONGO_URI);
    await store.logEvent({ at: at(0), dpid: A, vm: VM_A, kind: "join", detail: "peer 127.0.0.1:1" });
    await store.logEvent({ at: at(1), dpid: B, kind: "ignored", detail: "no VM configured" });
    await store.logEvent({ at: at(2), dpid: A, vm: VM_A, kind: "boot", detail: "started on h1" });
    await store.logEvent({ at: at(3), dpid: A, vm: VM_A, kind: "ready", detail: "console marker" });
    await store.patchRecord(A, {
      vmName: VM_A,
      host: "h1",
      state: "running",
      switch: { peer: "127.0.0.1:1", version: 4, connected: true },
    });
    // Build dist/ once outside the timed tests (bin/rfboot transpiles when stale).
    await execa(RFBOOT, ["--help"], { reject: false });
  });

  afterAll(async () => {
    await store?.close();
    await mongo
      ?.db(DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const events = async (...args: string[]) => {
    const r = await execa(RFBOOT, ["events", "--config", cfg, ...args], { reject: false });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    return r.stdout.split("\n").filter((l) => l !== "");
  };

  it("prints the log oldest first, by dpid, since a time, and as JSON lines", async () => {
    const all = await events();
    expect(all.map((l) => l.split(/\s+/)[3])).toEqual(["join", "ignored", "boot", "ready"]);
    expect(all[2]).toBe(`${at(2).toISOString()}  ${A}  ${VM_A}  boot  started on h1`);
    expect((await events("--dpid", `0x${A.replace(/^0+/, "")}`)).map((l) => l.split(/\s+/)[3])).toEqual([
      "join",
      "boot",
      "ready",
    ]);
    expect((await events("--since", at(2).toISOString())).map((l) => l.split(/\s+/)[3])).toEqual([
      "boot",
      "ready",
    ]);
    expect(await events("--since", "1m")).toEqual([]);
    expect((await events("-n", "2")).map((l) => l.split(/\s+/)[3])).toEqual(["boot", "ready"]);
    const json = (await events("--json", "--dpid", B)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json).toEqual([
      expect.objectContaining({
        dpid: B,
        kind: "ignored",
        detail: "no VM configured",
        at: at(1).toISOString(),
      }),
    ]);
  });

  it("refuses a bad --since with exit 2", async () => {
    const r = await execa(RFBOOT, ["events", "--config", cfg, "--since", "yesterday"], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--since: expected an age/);
  });

  it("--follow prints new events as they are written, once each, and Ctrl-C ends it with 0", async () => {
    const child = execa(RFBOOT, ["events", "--config", cfg, "--follow", "--interval", "0.2", "--dpid", A], {
      reject: false,
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    await until("the past events", async () => (out.includes(" ready ") ? true : undefined), 20_000);
    await store.logEvent({ dpid: A, vm: VM_A, kind: "leave", detail: "switch gone" });
    await store.logEvent({ dpid: B, kind: "ignored", detail: "not followed" });
    await store.logEvent({ dpid: A, vm: VM_A, kind: "stop", detail: "leave policy shutdown" });
    await until("the new events", async () => (out.includes(" stop ") ? true : undefined), 10_000);
    await sleep(600);
    child.kill("SIGINT");
    const r = await child;
    expect(r.exitCode).toBe(0);
    const kinds = out
      .trim()
      .split("\n")
      .map((l) => l.split(/\s+/)[3]);
    expect(kinds).toEqual(["join", "boot", "ready", "leave", "stop"]);
  });

  it("status --watch redraws in place on a terminal as a record changes; Ctrl-C ends it with 0", async () => {
    const shown = join(dir, "first-screen");
    const drive = execa("python3", [PTY], {
      input: JSON.stringify({
        cmd: [RFBOOT, "status", "--config", cfg, "--no-live", "--watch", "--interval", "0.3"],
        cwd: REPO,
        steps: [
          ["rfboot status: .*every 0.3s[\\s\\S]*running", "", shown],
          [`${VM_A}\\s+h1\\s+ready`, "\u0003"],
        ],
        timeout: 60,
      }),
      reject: false,
    });
    // The first screen shows `running`; the record then changes to `ready` behind the watch.
    await until("the first screen", async () => (existsSync(shown) ? true : undefined), 40_000);
    await store.patchRecord(A, { state: "ready", readyAt: new Date() });
    const r = JSON.parse((await drive).stdout) as { transcript: string; exit: number; error: string | null };
    expect(r.error, r.transcript.slice(-1500)).toBeNull();
    expect(r.exit).toBe(0);
    const screens = r.transcript.split("\u001b[H\u001b[2J").filter((s) => s.includes("DPID"));
    expect(screens.length).toBeGreaterThanOrEqual(2);
    expect(screens[0]).toMatch(new RegExp(`${A}\\s+connected\\s+${VM_A}\\s+h1\\s+running`));
    expect(screens.at(-1)).toMatch(new RegExp(`${A}\\s+connected\\s+${VM_A}\\s+h1\\s+ready`));
    await store.patchRecord(A, { state: "running" });
  });

  it("status --watch through a pipe prints a plain table once per change", async () => {
    const child = execa(RFBOOT, ["status", "--config", cfg, "--no-live", "--watch", "--interval", "0.2"], {
      reject: false,
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    await until("the first table", async () => (out.includes("running") ? true : undefined), 20_000);
    await sleep(1000);
    await store.patchRecord(A, {
      state: "failed",
      lastError: { kind: "start", message: "no", at: new Date() },
    });
    await until("the second table", async () => (out.includes("failed") ? true : undefined), 10_000);
    await sleep(1000);
    child.kill("SIGINT");
    expect((await child).exitCode).toBe(0);
    expect(out).not.toContain("\u001b");
    expect(out.match(/^DPID/gm)).toHaveLength(2);
    expect(out).toContain("start: no");
  });
});
