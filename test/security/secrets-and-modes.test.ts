/**
 * No secrets in logs, tight file modes. Log lines go through createLogger (the
 * daemon's logger) into memory: URI passwords must not appear whatever carries them (a `uri` field, a
 * message, an error's message and stack, an argument array, a query parameter), and real code paths
 * that log URIs (MongoStore against an unreachable server, virsh errors) are run. Files rfboot writes
 * (define's XML temp files, disk overlays, the outbox state file) are checked for their modes.
 */
import { execa } from "execa";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger, redactSecrets } from "../../src/common/log.js";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import { HostStorage } from "../../src/provisioner/libvirt/storage.js";
import { MongoStore } from "../../src/provisioner/store/index.js";
import { createSpawnRunner, makeVirshError } from "../../src/provisioner/libvirt/virsh.js";
import { describeWith } from "../helpers/env.js";

const SECRET = "s3cr3t-Pa55";

function capture() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger = createLogger({ level: "debug", destination, pretty: false });
  return { logger, text: () => chunks.join("") };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "rfbt-sec-modes-"));
  dirs.push(d);
  return d;
}

describe("no secrets in logs", () => {
  it("URI passwords are redacted in every field, message, error and argument list", () => {
    const { logger, text } = capture();
    const mongo = `mongodb://rfboot:${SECRET}@db1.example.org:27017,db2.example.org/db?authSource=admin`;
    const libvirt = `qemu+tcp://admin:${SECRET}@rack2.example.org/system`;
    logger.info({ uri: mongo }, "configured");
    logger.info({ host: { uri: libvirt } }, "host");
    logger.info({ mongo }, "a field not named uri");
    logger.info(`connecting to ${mongo} now`);
    logger.warn({ args: ["-c", libvirt, "list"] }, "argument array");
    logger.error({ err: new Error(`connection to ${mongo} failed`) }, "an error object");
    logger.error(
      { err: makeVirshError(libvirt, ["start", "rfvmA"], `error: failed on ${libvirt}`, 1) },
      "virsh",
    );
    logger.info({ url: `https://x.example.org/?password=${SECRET}&a=1` }, "query password");
    logger.child({ upstream: `tcp://u:${SECRET}@10.0.0.1:6633` }).info("child bindings");
    const out = text();
    expect(out.split("\n").filter(Boolean)).toHaveLength(9);
    expect(out).not.toContain(SECRET);
    // Still useful: user and host stay.
    expect(out).toContain("rfboot:***@db1.example.org");
    expect(out).toContain("admin:***@rack2.example.org");
  });

  it("redactSecrets leaves text without credentials alone", () => {
    for (const s of [
      "qemu:///system",
      "mongodb://127.0.0.1:27017/db",
      "a: b",
      "user@host",
      "http://h/p?x=1",
    ]) {
      expect(redactSecrets(s)).toBe(s);
    }
  });

  it("MongoStore against an unreachable server logs the URI without its password", async () => {
    const { logger, text } = capture();
    const store = await MongoStore.open({
      uri: `mongodb://rfboot:${SECRET}@127.0.0.1:1/db`,
      logger,
      serverSelectionTimeoutMS: 200,
      connectTimeoutMS: 200,
    });
    await store.close(200);
    const out = text();
    expect(out).toMatch(/store configured/);
    expect(out).not.toContain(SECRET);
  });
});

describe("file modes", () => {
  it("define writes the domain XML to a 0600 file inside a private directory, then removes it", async () => {
    const seen: { mode: number; dirMode: number }[] = [];
    const run = async (_uri: string, args: string[]) => {
      if (args[0] === "define") {
        const f = args[1]!;
        seen.push({ mode: statSync(f).mode & 0o777, dirMode: statSync(join(f, "..")).mode & 0o777 });
      }
      return { stdout: "", stderr: "" };
    };
    const m = new DomainManager({ host: { name: "h", uri: "test:///default" }, run });
    await m.define("rfvmA", "<domain/>");
    await m.dispose();
    expect(seen).toEqual([{ mode: 0o600, dirMode: 0o700 }]);
  });

  it("the outbox state file (buffered writes while MongoDB is down) is 0600 in a 0700 directory", async () => {
    const stateDir = join(tmp(), "state");
    const store = await MongoStore.open({
      uri: "mongodb://127.0.0.1:1/db",
      stateDir,
      serverSelectionTimeoutMS: 200,
      connectTimeoutMS: 200,
    });
    void store.upsertRfconfigRows([
      { vm_id: "2888912904352", vm_port: "1", ct_id: "0", dp_id: "5", dp_port: "1" },
    ]);
    const file = join(stateDir, "rfboot_outbox-db.json");
    for (let i = 0; i < 100 && !exists(file); i++) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    await store.close(100);
  });
});

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

describeWith(["libvirt", "qemu-img", "root"], "file modes of disks", () => {
  it("a disk overlay or copy is a volume libvirtd creates 0600 (never world-readable), whatever our umask", async () => {
    const d = tmp();
    const base = join(d, "base.qcow2");
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
    const uri = "qemu:///system";
    const pool = `rfbtv-modes-${process.pid}`;
    const run = createSpawnRunner();
    const storage = new HostStorage({
      host: { name: "h", uri },
      spec: {
        pool,
        storageDir: join(d, "disks"),
        consoleLogDir: join(d, "disks"),
        images: "path",
        upload: false,
      },
      run,
    });
    const old = process.umask(0o000);
    try {
      const path = join(d, "disks", "rfvmA.qcow2");
      expect(await storage.prepareDisk({ kind: "overlay", base, format: "qcow2", path })).toBe(true);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const copy = join(d, "disks", "rfvmB.qcow2");
      expect(await storage.prepareDisk({ kind: "copy", base, format: "qcow2", path: copy })).toBe(true);
      expect(statSync(copy).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
      for (const args of [
        ["pool-destroy", pool],
        ["pool-undefine", pool],
      ])
        await run(uri, args).catch(() => undefined);
      await storage.dispose();
    }
  });
});
