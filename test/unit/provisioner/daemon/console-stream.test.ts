/**
 * Readiness through the domain's console stream (fakes): a QEMU VM with a pty starts paused, its console is
 * attached over the host's URI, then it is resumed, and the marker is read from the stream, not the log
 * file; the same for a restore from managedsave. Without a pty the local log file is read, and a remote host
 * without a pty is a config error. Time is a FakeClock, the stream a FakeDomainConsole.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ATTACH_WAIT_MS } from "../../../../src/provisioner/vm-readiness.js";
import { FakeDomainConsole, FakeLibvirt, settle } from "./fakes.js";
import { hex16, joinAndSettle, rig, type Rig } from "./rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const REMOTE = "qemu+tcp://10.0.0.2/system";
const READY = `readiness: { consoleMarker: "GUEST-UP", timeoutSeconds: 30 }`;
const SUSPEND = "policies: { leave: { action: suspend, graceSeconds: 1 } }";
const QEMU = "{ hypervisor: qemu, memoryMiB: 64 }";
const QEMU_NO_PTY = "{ hypervisor: qemu, memoryMiB: 64, console: { pty: false } }";
const logOf = (x: Rig, vm: string) => join(x.stateDir, "console", `${vm}.log`);

/** virshOf lists the commands sent to `uri` that change a domain's run state, as "cmd args". */
const runStateCalls = (x: Rig, uri: string) =>
  x.libvirt.calls
    .filter((c) => c.uri === uri && ["start", "resume", "destroy", "managedsave"].includes(c.args[0]!))
    .map((c) => c.args.join(" "));

/** settleUntil lets callbacks and I/O run until `cond` holds (the define writes a real temp file). */
async function settleUntil(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!cond() && Date.now() < end) {
    await settle();
    await new Promise((res) => setTimeout(res, 2));
  }
  expect(cond()).toBe(true);
}

async function qemuRig(o: { uris?: string[]; defaults?: string; extra?: string } = {}) {
  const libvirt = new FakeLibvirt();
  const stream = new FakeDomainConsole(libvirt);
  const x = await rig({
    vms: 1,
    libvirt,
    uris: o.uris ?? [REMOTE],
    defaults: o.defaults ?? QEMU,
    extra: o.extra ?? `${SUSPEND}\n${READY}`,
    domainConsole: stream.watch,
    // The guest's files are where the config says on every host here (storage has tests of its own).
    hostExtra: Object.fromEntries((o.uris ?? [REMOTE]).map((_, i) => [i + 1, "images: path"])),
  });
  return { x, stream };
}

describe("readiness through the console stream", () => {
  it("a QEMU VM on a remote host: started paused, console attached over its URI, resumed; the marker comes from the stream", async () => {
    const { x, stream } = await qemuRig();
    r = x;
    await joinAndSettle(x, 1n);
    expect(runStateCalls(x, REMOTE)).toEqual(["start rfvm1 --paused", "resume rfvm1"]);
    expect(stream.watches).toHaveLength(1);
    const w = stream.watches[0]!;
    expect(w).toMatchObject({ uri: REMOTE, domain: "rfvm1", stateAtStart: "paused", timeoutMs: 30_000 });
    expect(String(w.marker)).toBe("/GUEST-UP/");
    expect(x.seen.ready).toEqual([]);
    w.print("[    0.000000] Linux version 6.1.0");
    await settle();
    expect(x.seen.ready).toEqual([]);
    w.print("rfboot: GUEST-UP name=rfvm1");
    await settle();
    expect(x.seen.ready.map((e) => [e.vm, e.via])).toEqual([["rfvm1", "console"]]);
    expect(x.store.records.get(hex16(1n))!.state).toBe("ready");
  });

  it("the log file is not what counts when a stream exists (a local host too)", async () => {
    const { x, stream } = await qemuRig({ uris: ["qemu:///system"] });
    r = x;
    await joinAndSettle(x, 1n);
    x.console.append(logOf(x, "rfvm1"), "GUEST-UP\n");
    await x.clock.advance(500);
    expect(x.seen.ready).toEqual([]);
    stream.watches[0]!.print("GUEST-UP");
    await settle();
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console"]);
  });

  it("a console that never attaches: the domain is resumed after ATTACH_WAIT_MS all the same", async () => {
    const libvirt = new FakeLibvirt();
    const stream = new FakeDomainConsole(libvirt);
    stream.autoAttach = false;
    r = await rig({
      vms: 1,
      libvirt,
      uris: [REMOTE],
      hostExtra: { 1: "images: path" },
      defaults: QEMU,
      extra: `${SUSPEND}\n${READY}`,
      domainConsole: stream.watch,
    });
    r.switches.join(1n);
    await settleUntil(() => stream.watches.length > 0);
    await r.clock.advance(ATTACH_WAIT_MS - 100);
    expect(runStateCalls(r, REMOTE)).toEqual(["start rfvm1 --paused"]);
    await r.clock.advance(200);
    await r.daemon.idle();
    expect(runStateCalls(r, REMOTE)).toEqual(["start rfvm1 --paused", "resume rfvm1"]);
    expect(libvirt.host(REMOTE).domains.get("rfvm1")?.state).toBe("running");
  });

  it("a console watch that fails at once (virsh exited) does not hold the start; readiness times out", async () => {
    const libvirt = new FakeLibvirt();
    const stream = new FakeDomainConsole(libvirt);
    stream.autoAttach = false;
    r = await rig({
      vms: 1,
      libvirt,
      uris: [REMOTE],
      hostExtra: { 1: "images: path" },
      defaults: QEMU,
      extra: `${SUSPEND}\n${READY}`,
      domainConsole: stream.watch,
    });
    r.switches.join(1n);
    await settleUntil(() => stream.watches.length > 0);
    stream.watches[0]!.fail("exited");
    await settle();
    await r.daemon.idle();
    expect(runStateCalls(r, REMOTE)).toEqual(["start rfvm1 --paused", "resume rfvm1"]);
    expect(r.store.records.get(hex16(1n))!.lastError?.kind).toBe("readiness-timeout");
  });

  it("a restore from managedsave goes paused too; its first console output is readiness", async () => {
    const { x, stream } = await qemuRig();
    r = x;
    await joinAndSettle(x, 1n);
    stream.watches[0]!.print("GUEST-UP");
    await settle();
    x.switches.leave(1n);
    await x.clock.advance(1000);
    await x.daemon.idle();
    expect(x.libvirt.argsOf(REMOTE, "managedsave")).toHaveLength(1);
    await joinAndSettle(x, 1n);
    expect(x.seen.ensured.at(-1)?.action).toBe("started");
    expect(runStateCalls(x, REMOTE).slice(-2)).toEqual(["start rfvm1 --paused", "resume rfvm1"]);
    const w = stream.watches[1]!;
    expect(w.stateAtStart).toBe("paused");
    expect(String(w.marker)).toBe("/\\S/");
    expect(w.timeoutMs).toBe(5_000);
    w.print("RFBOOT-HEARTBEAT n=42");
    await settle();
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console", "console (restored)"]);
  });

  it("a quiet restore is ready when its stream watch ends without output", async () => {
    const { x, stream } = await qemuRig();
    r = x;
    await joinAndSettle(x, 1n);
    stream.watches[0]!.print("GUEST-UP");
    await settle();
    x.switches.leave(1n);
    await x.clock.advance(1000);
    await x.daemon.idle();
    await joinAndSettle(x, 1n);
    stream.watches[1]!.fail("timeout");
    await settle();
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console", "restored"]);
  });

  it("without a pty on a local host: a plain start, the marker from the local log file", async () => {
    const { x, stream } = await qemuRig({ uris: ["qemu:///system"], defaults: QEMU_NO_PTY });
    r = x;
    await joinAndSettle(x, 1n);
    expect(runStateCalls(x, "qemu:///system")).toEqual(["start rfvm1"]);
    expect(stream.watches).toEqual([]);
    x.console.append(logOf(x, "rfvm1"), "GUEST-UP\n");
    await x.clock.advance(100);
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console"]);
  });

  it("without a pty on a remote host, a console marker is a config error before anything is defined", async () => {
    const { x, stream } = await qemuRig({ defaults: QEMU_NO_PTY });
    r = x;
    await joinAndSettle(x, 1n);
    const rec = x.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("failed");
    expect(rec.lastError?.kind).toBe("ConfigError");
    expect(rec.lastError?.message).toMatch(/console\.pty/);
    expect(rec.lastError?.message).toContain("rfvm1");
    expect(x.libvirt.argsOf(REMOTE, "define")).toEqual([]);
    expect(stream.watches).toEqual([]);
  });

  it("without a pty on a remote host and no console marker: fine, nothing is read from the console", async () => {
    const { x, stream } = await qemuRig({
      defaults: QEMU_NO_PTY,
      extra: `${SUSPEND}\nreadiness: { consoleMarker: null }`,
    });
    r = x;
    await joinAndSettle(x, 1n);
    expect(x.store.records.get(hex16(1n))!.state).toBe("running");
    expect(runStateCalls(x, REMOTE)).toEqual(["start rfvm1"]);
    expect(stream.watches).toEqual([]);
  });

  const LXC = "{ hypervisor: lxc, memoryMiB: 64, boot: { type: init, init: /init, rootfs: /srv/rootfs } }";

  it("LXC: a plain start; the stream's virsh is started before it and opens the console once the domain runs (its pty keeps early output)", async () => {
    const { x, stream } = await qemuRig({ uris: ["lxc:///system"], defaults: LXC });
    r = x;
    await joinAndSettle(x, 1n);
    expect(runStateCalls(x, "lxc:///system")).toEqual(["start rfvm1"]);
    expect(stream.watches.map((w) => [w.uri, w.stateAtStart, w.stateWhenOpened])).toEqual([
      ["lxc:///system", undefined, "running"],
    ]);
    stream.watches[0]!.print("GUEST-UP");
    await settle();
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console"]);
  });

  it("LXC: a start that fails drops the console prepared for it; the retry prepares its own", async () => {
    const { x, stream } = await qemuRig({ uris: ["lxc:///system"], defaults: LXC });
    r = x;
    x.libvirt.host("lxc:///system").fail.set("start", ["error: internal error: guest failed to start\n"]);
    await joinAndSettle(x, 1n);
    expect(x.seen.failed).toHaveLength(1);
    expect(stream.watches).toHaveLength(1);
    expect(stream.watches[0]!).toMatchObject({ aborted: true, settled: true, stateWhenOpened: undefined });
    await x.clock.advance(1000);
    await x.daemon.idle();
    await settleUntil(() => stream.watches.length === 2);
    expect(stream.watches[1]!.stateWhenOpened).toBe("running");
    stream.watches[1]!.print("GUEST-UP");
    await settle();
    expect(x.seen.ready.map((e) => e.via)).toEqual(["console"]);
  });

  it("LXC without a console marker: no console is prepared or read", async () => {
    const { x, stream } = await qemuRig({
      uris: ["lxc:///system"],
      defaults: LXC,
      extra: `${SUSPEND}\nreadiness: { consoleMarker: null }`,
    });
    r = x;
    await joinAndSettle(x, 1n);
    expect(runStateCalls(x, "lxc:///system")).toEqual(["start rfvm1"]);
    expect(stream.watches).toEqual([]);
  });
});
