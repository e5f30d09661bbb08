/**
 * The process seam: real children of /bin/sh for the defaults (argument arrays reach the child verbatim, the
 * C locale is pinned, timeouts kill, `classify` decides), and injected seams showing that the virsh runner,
 * the virsh shell and the event stream each go through it with the requests they always made.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { EventEmitter } from "node:events";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { LibvirtEvents } from "../../../../src/provisioner/libvirt/libvirt-events.js";
import {
  childEnv,
  runProcess,
  spawnProcess,
  type ProcessSeam,
  type RunOutcome,
  type RunRequest,
  type SpawnRequest,
} from "../../../../src/provisioner/libvirt/process.js";
import {
  VirshShellRunner,
  createSpawnRunner,
  isVirshTimeout,
} from "../../../../src/provisioner/libvirt/virsh.js";

const dir = mkdtempSync(join(tmpdir(), "rfbtv-process-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
};
const accept = () => undefined;

describe("runProcess", () => {
  it("passes the argument array verbatim (no shell) under the C locale and keeps the final newline", async () => {
    const echo = script("echo", 'printf "%s|" "$@"; printf "%s %s [%s]\\n" "$LC_ALL" "$LANG" "$LANGUAGE"');
    const r = await runProcess({
      file: echo,
      args: ["a b", "$(id)", "it's"],
      timeoutMs: 5000,
      classify: accept,
    });
    expect(r.stdout).toBe("a b|$(id)|it's|C C []\n");
    expect(r).toMatchObject({ exitCode: 0, timedOut: false, failed: false, summary: "" });
  });
  it("hands a failure to classify, and rejects with what it returns", async () => {
    const fail = script("fail", "echo oops >&2; exit 3");
    const seen: RunOutcome[] = [];
    const classify = (o: RunOutcome) => {
      seen.push(o);
      return o.failed ? new Error(`failed ${o.exitCode}`) : undefined;
    };
    await expect(runProcess({ file: fail, args: [], timeoutMs: 5000, classify })).rejects.toThrow("failed 3");
    expect(seen[0]).toMatchObject({ stderr: "oops\n", exitCode: 3, failed: true, timedOut: false });
    expect(seen[0]!.summary).not.toBe("");
  });
  it("feeds input on stdin; without input stdin is closed", async () => {
    const cat = script("cat", "cat");
    expect(
      (await runProcess({ file: cat, args: [], timeoutMs: 5000, input: "x\n", classify: accept })).stdout,
    ).toBe("x\n");
    expect((await runProcess({ file: cat, args: [], timeoutMs: 5000, classify: accept })).stdout).toBe("");
  });
  it("kills the whole process group at the timeout, helpers included", async () => {
    // The helper keeps the pipes open: only a group kill ends the call before the helper's sleep does.
    const hang = script("hang", "sleep 5 & sleep 5");
    const t0 = Date.now();
    const r = await runProcess({
      file: hang,
      args: [],
      timeoutMs: 150,
      processGroup: true,
      classify: accept,
    });
    expect(r).toMatchObject({ timedOut: true, failed: true });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
  it("times out a child outside a group too", async () => {
    const hang = script("hang2", "exec sleep 5");
    const r = await runProcess({ file: hang, args: [], timeoutMs: 150, classify: accept });
    expect(r).toMatchObject({ timedOut: true, failed: true });
  });
  it("a missing executable is an outcome with a summary and no exit code", async () => {
    const r = await runProcess({ file: join(dir, "nope"), args: [], timeoutMs: 5000, classify: accept });
    expect(r.exitCode).toBeUndefined();
    expect(r.failed).toBe(true);
    expect(r.summary).toMatch(/ENOENT|nope/);
  });
});

describe("spawnProcess", () => {
  it("streams a child with the C locale; an explicit env built by childEnv keeps it", async () => {
    const env = script("env", 'printf "%s %s" "$LC_ALL" "$RFBOOT_X"');
    const read = (c: ChildProcessWithoutNullStreams) =>
      new Promise<string>((res) => {
        let out = "";
        c.stdout.on("data", (d: Buffer) => (out += d.toString()));
        c.on("close", () => res(out));
      });
    expect(await read(spawnProcess({ file: env, args: [] }))).toBe("C ");
    expect(await read(spawnProcess({ file: env, args: [], env: childEnv({ RFBOOT_X: "y" }) }))).toBe("C y");
  });
});

/** fakeSeam records every request; run answers with `reply`, spawn returns a child that exits at once. */
function fakeSeam(reply: Partial<RunOutcome> = {}) {
  const runs: RunRequest[] = [];
  const spawns: SpawnRequest[] = [];
  const seam: ProcessSeam = {
    async run(req) {
      runs.push(req);
      const o: RunOutcome = {
        file: req.file,
        args: req.args,
        stdout: "",
        stderr: "",
        exitCode: 0,
        timedOut: false,
        failed: false,
        summary: "",
        detail: undefined,
        ...reply,
      };
      const err = req.classify(o);
      if (err) throw err;
      return o;
    },
    spawn(req) {
      spawns.push(req);
      const child = Object.assign(new EventEmitter(), {
        stdin: new PassThrough(),
        stdout: new PassThrough(),
        stderr: new PassThrough(),
        exitCode: null,
        kill: () => true,
      });
      setImmediate(() => child.emit("close", 1));
      return child as unknown as ChildProcessWithoutNullStreams;
    },
  };
  return { seam, runs, spawns };
}

describe("the wing's children go through the seam", () => {
  it("the virsh runner: -c URI then the arguments, its own process group, the call's timeout", async () => {
    const f = fakeSeam({ stdout: "running\n" });
    const run = createSpawnRunner({ virsh: "/usr/bin/virsh", processes: f.seam, defaultTimeoutMs: 1234 });
    expect(await run("qemu:///system", ["domstate", "vm1"])).toEqual({ stdout: "running\n", stderr: "" });
    await run("qemu:///system", ["define", "/dev/stdin"], { timeoutMs: 99, input: "<domain/>" });
    expect(
      f.runs.map(({ file, args, timeoutMs, processGroup, input }) => ({
        file,
        args,
        timeoutMs,
        processGroup,
        input,
      })),
    ).toEqual([
      {
        file: "/usr/bin/virsh",
        args: ["-c", "qemu:///system", "domstate", "vm1"],
        timeoutMs: 1234,
        processGroup: true,
        input: undefined,
      },
      {
        file: "/usr/bin/virsh",
        args: ["-c", "qemu:///system", "define", "/dev/stdin"],
        timeoutMs: 99,
        processGroup: true,
        input: "<domain/>",
      },
    ]);
  });
  it("the virsh runner classifies a timed-out outcome as a timeout", async () => {
    const f = fakeSeam({ timedOut: true, failed: true, exitCode: undefined });
    const e = await createSpawnRunner({ processes: f.seam })("u", ["start", "x"]).catch((x: unknown) => x);
    expect(isVirshTimeout(e)).toBe(true);
  });
  it("the virsh shell: `virsh -q -c URI`, and the fallback through the same seam when the shell dies", async () => {
    const f = fakeSeam();
    const shells = new VirshShellRunner({ virsh: "virsh", processes: f.seam, shellsPerUri: 1 });
    await shells.run("test:///default", ["list"]);
    expect(f.spawns[0]).toMatchObject({ file: "virsh", args: ["-q", "-c", "test:///default"] });
    expect(f.runs[0]).toMatchObject({ file: "virsh", args: ["-c", "test:///default", "list"] });
    await shells.close();
  });
  it("the event stream: `virsh -c URI event --loop --all --timestamp`", async () => {
    const f = fakeSeam();
    const ev = new LibvirtEvents({
      host: { name: "h1", uri: "qemu:///system" },
      processes: f.seam,
      restartMinMs: 60_000,
    });
    ev.start();
    await ev.stop();
    expect(f.spawns).toEqual([
      { file: "virsh", args: ["-c", "qemu:///system", "event", "--loop", "--all", "--timestamp"] },
    ]);
  });
});
