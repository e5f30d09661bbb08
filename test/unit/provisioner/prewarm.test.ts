/**
 * The Prewarmer and the prewarm action on fakes (scripted libvirt, in-memory store and console, fake
 * clock): configured VMs boot ahead of their switch in config order, to their console marker, then are
 * saved; concurrency and per-host memory budgets bound the boots; a join during a prewarm adopts the running
 * VM; a join after it restores the image; a changed config drops the image and prewarms again; a VM removed
 * from the config is removed; a failure is recorded, once, and waits out a backoff; a stop cuts a prewarm
 * short without calling it a failure; while a VM boots for prewarm its record says so (`prewarming`).
 */
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { VirshRunner } from "../../../src/provisioner/index.js";
import type { RecordPatch } from "../../../src/provisioner/store/index.js";
import { FakeDomainConsole, FakeLibvirt } from "./daemon/fakes.js";
import { unitConfig, hex16, joinAndSettle, rig, uri, type Rig } from "./daemon/rig.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

const MARKER = "GUEST-UP";
const readiness = `readiness: { consoleMarker: "${MARKER}", timeoutSeconds: 30 }`;
const policies = (prewarm: string, leave = "{ action: suspend, graceSeconds: 1 }") =>
  `policies: { leave: ${leave}, prewarm: ${prewarm} }\n${readiness}`;
const logOf = (x: Rig, vm: string) => join(x.stateDir, "console", `${vm}.log`);

/** until advances the fake clock in small steps until `pred` holds (at most `ms` of it); false if it never did. */
async function until(x: Rig, pred: () => boolean, ms = 2000): Promise<boolean> {
  for (let t = 0; t < ms && !pred(); t += 10) {
    await x.clock.advance(10);
    // define writes its XML to a temp file: real I/O, which a busy machine may finish only later.
    if (!pred()) await new Promise((res) => setTimeout(res, 2));
  }
  return pred();
}

/** boot makes VM `vm`'s guest print its marker and waits until its prewarm saved it. */
async function boot(x: Rig, vm: string): Promise<void> {
  const saved = () => x.seen.prewarmed.filter((e) => e.vm === vm).length;
  const before = saved();
  x.console.append(logOf(x, vm), `${MARKER}\n`);
  await until(x, () => saved() > before || x.seen.ensured.length > 0);
  await x.clock.advance(10);
}

/** domState is what the fake host says of a domain: state, and whether it holds a managed save. */
const domState = (x: Rig, vm: string, host = 1) => {
  const d = x.libvirt.host(uri(host)).domains.get(vm);
  return d ? `${d.state}${d.saved ? " (saved)" : ""}` : "none";
};

const prewarmEvents = (x: Rig) =>
  x.store.events.filter((e) => e.kind === "prewarm").map((e) => `${e.vm}: ${e.detail}`);

const metric = async (x: Rig, name: string) =>
  (await x.daemon.metrics.registry.getSingleMetricAsString(name))
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n");

describe("Prewarmer", () => {
  it("is off by default: no domain is made before a switch joins", async () => {
    r = await rig({
      vms: 2,
      extra: `policies: { leave: { action: suspend, graceSeconds: 1 } }\n${readiness}`,
    });
    await r.clock.advance(1000);
    expect(r.libvirt.argsOf(uri(1), "define")).toEqual([]);
  });

  it("boots each VM in config order to its marker, saves it and records the image; one at a time", async () => {
    r = await rig({ vms: 3, extra: policies("{ enabled: true }") });
    await until(r, () => domState(r!, "rfvm1") === "running");
    expect([domState(r, "rfvm1"), domState(r, "rfvm2")]).toEqual(["running", "none"]);
    // Running, and marked as a prewarm's boot: no switch asked for it.
    expect(r.store.records.get(hex16(1n))).toMatchObject({
      state: "running",
      prewarming: { since: expect.any(Date), host: "h1" },
    });
    expect(r.store.records.get(hex16(1n))?.switch).toBeUndefined();
    await boot(r, "rfvm1");
    expect(domState(r, "rfvm1")).toBe("shut off (saved)");
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("prewarmed");
    expect(rec.prewarming).toBeNull();
    expect(rec.prewarm).toMatchObject({
      host: "h1",
      imageMiB: 64,
      fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(r.seen.prewarmed.map((e) => [e.vm, e.host])).toEqual([["rfvm1", "h1"]]);
    // No switch joined: no `ready` daemon event, though the record saw readiness (readyAt).
    expect(r.seen.ready).toEqual([]);
    expect(rec.readyAt).toBeInstanceOf(Date);
    expect(await until(r, () => domState(r!, "rfvm2") === "running")).toBe(true);
    await boot(r, "rfvm2");
    await boot(r, "rfvm3");
    expect(r.seen.prewarmed.map((e) => e.vm)).toEqual(["rfvm1", "rfvm2", "rfvm3"]);
    expect(prewarmEvents(r)).toEqual([
      "rfvm1: saved on h1 (64 MiB)",
      "rfvm2: saved on h1 (64 MiB)",
      "rfvm3: saved on h1 (64 MiB)",
    ]);
    expect(await metric(r, "rfboot_prewarmed_vms")).toContain('rfboot_prewarmed_vms{host="h1"} 3');
    expect(await metric(r, "rfboot_prewarm_total")).toContain('rfboot_prewarm_total{outcome="saved"} 3');
    // The start went through the same paused start as a join's would not for the test driver: plain start.
    expect(r.libvirt.argsOf(uri(1), "managedsave")).toEqual([
      ["managedsave", "rfvm1"],
      ["managedsave", "rfvm2"],
      ["managedsave", "rfvm3"],
    ]);
  });

  it("a record read that missed an image saved a moment ago does not make the VM prewarm again", async () => {
    r = await rig({
      vms: 2,
      extra: policies("{ enabled: true }"),
      before: (x) => {
        // Every read misses the image writes: it shows the record as it was during the prewarm's boot (a
        // read under way while the write of the image lands).
        const read = x.store.listRecords.bind(x.store);
        x.store.listRecords = async () =>
          (await read()).map((rec) =>
            rec.prewarm
              ? { ...rec, prewarm: null, state: "running", prewarming: { since: rec.prewarm.at, host: "h1" } }
              : rec,
          );
      },
    });
    await until(r, () => domState(r!, "rfvm1") === "running");
    await boot(r, "rfvm1");
    expect(domState(r, "rfvm1")).toBe("shut off (saved)");
    expect(await until(r, () => domState(r!, "rfvm2") === "running")).toBe(true);
    await boot(r, "rfvm2");
    await r.clock.advance(1000);
    expect(r.seen.prewarmed.map((e) => e.vm)).toEqual(["rfvm1", "rfvm2"]);
    expect(r.libvirt.argsOf(uri(1), "managedsave")).toEqual([
      ["managedsave", "rfvm1"],
      ["managedsave", "rfvm2"],
    ]);
    expect(domState(r, "rfvm1")).toBe("shut off (saved)");
  });

  it("concurrency bounds boots over all hosts; a host's memory budget bounds them there", async () => {
    r = await rig({ hosts: 2, vms: 4, extra: policies("{ enabled: true, concurrency: 3, memoryMiB: 100 }") });
    // 64 MiB each, 100 MiB per host: one booting per host although 3 may run at once.
    const running = () =>
      ["rfvm1", "rfvm2", "rfvm3", "rfvm4"].filter(
        (v) => domState(r!, v, 1) === "running" || domState(r!, v, 2) === "running",
      );
    await until(r, () => running().length === 2);
    await r.clock.advance(200);
    expect(running()).toEqual(["rfvm1", "rfvm2"]);
    r.console.append(logOf(r, "rfvm1"), `${MARKER}\n`);
    r.console.append(logOf(r, "rfvm2"), `${MARKER}\n`);
    await until(r, () => running().includes("rfvm3") && running().includes("rfvm4"));
    expect(running()).toEqual(["rfvm3", "rfvm4"]);
  });

  it("a switch joining during its VM's prewarm: not saved, the join adopts the VM once ready", async () => {
    r = await rig({ vms: 1, extra: policies("{ enabled: true }") });
    expect(await until(r, () => domState(r!, "rfvm1") === "running")).toBe(true);
    r.switches.join(1n);
    await r.clock.advance(500);
    // The join waits behind the prewarm (same dpid): nothing ensured yet, nothing saved.
    expect(r.seen.ensured).toEqual([]);
    await boot(r, "rfvm1");
    expect(domState(r, "rfvm1")).toBe("running");
    expect(r.libvirt.argsOf(uri(1), "managedsave")).toEqual([]);
    expect(r.seen.ensured.map((e) => e.action)).toEqual(["adopted"]);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["adopted (ready since its last start)"]);
    expect(r.store.records.get(hex16(1n))).toMatchObject({ state: "ready", prewarming: null });
    expect(r.store.records.get(hex16(1n))?.prewarm ?? null).toBeNull();
    expect(prewarmEvents(r)).toEqual(["rfvm1: not saved: switch joined"]);
  });

  it("a join after the prewarm restores the image on its host and forgets it", async () => {
    r = await rig({ hosts: 2, vms: 1, extra: policies("{ enabled: true }") });
    await until(r, () => domState(r!, "rfvm1") === "running");
    await boot(r, "rfvm1");
    expect(r.store.records.get(hex16(1n))?.prewarm?.host).toBe("h1");
    await joinAndSettle(r, 1n);
    expect(r.seen.ensured.map((e) => [e.host, e.action])).toEqual([["h1", "started"]]);
    // Restored: the first new console output (or quiet) makes it ready, not the boot marker.
    r.console.append(logOf(r, "rfvm1"), "login:\n");
    await r.clock.advance(100);
    expect(r.seen.ready.map((e) => e.via)).toEqual(["console (restored)"]);
    expect(r.store.records.get(hex16(1n))).toMatchObject({ state: "ready", prewarm: null });
    expect(prewarmEvents(r)).toEqual(["rfvm1: saved on h1 (64 MiB)", "rfvm1: restored on h1"]);
    expect(await metric(r, "rfboot_prewarm_total")).toContain('rfboot_prewarm_total{outcome="restored"} 1');
    expect(await metric(r, "rfboot_prewarmed_vms")).toContain('rfboot_prewarmed_vms{host="h1"} 0');
  });

  it("a changed config (reload) drops the stale image and prewarms the VM again", async () => {
    r = await rig({ vms: 1, extra: policies("{ enabled: true }") });
    await until(r, () => domState(r!, "rfvm1") === "running");
    await boot(r, "rfvm1");
    const first = r.store.records.get(hex16(1n))!.prewarm!.fingerprint;
    const next = unitConfig(
      r.stateDir,
      { vms: 1, defaults: "{ hypervisor: test, memoryMiB: 96 }", extra: policies("{ enabled: true }") },
      "reload",
    );
    await r.daemon.reload(next);
    await until(r, () => domState(r!, "rfvm1") === "running");
    expect(r.libvirt.argsOf(uri(1), "managedsave-remove")).toEqual([["managedsave-remove", "rfvm1"]]);
    expect(domState(r, "rfvm1")).toBe("running");
    await boot(r, "rfvm1");
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec).toMatchObject({ state: "prewarmed", prewarm: { imageMiB: 96 } });
    expect(rec.prewarm!.fingerprint).not.toBe(first);
    expect(prewarmEvents(r)).toEqual([
      "rfvm1: saved on h1 (64 MiB)",
      "rfvm1: dropped: config changed",
      "rfvm1: saved on h1 (96 MiB)",
    ]);
  });

  it("a prewarmed VM removed from the config (reload) is undefined with its image", async () => {
    r = await rig({ vms: 2, extra: policies("{ enabled: true }") });
    await until(r, () => domState(r!, "rfvm1") === "running");
    await boot(r, "rfvm1");
    await boot(r, "rfvm2");
    const next = unitConfig(r.stateDir, { vms: 1, extra: policies("{ enabled: true }") }, "reload");
    await r.daemon.reload(next);
    await r.clock.advance(50);
    expect(domState(r, "rfvm2")).toBe("none");
    expect(domState(r, "rfvm1")).toBe("shut off (saved)");
    expect(r.store.records.get(hex16(2n))).toMatchObject({ state: "missing", prewarm: null });
    expect(prewarmEvents(r).at(-1)).toBe("rfvm2: dropped: removed from the config (domain undefined on h1)");
  });

  it("a VM that never gets ready: failure recorded once, VM destroyed, no retry before the backoff", async () => {
    const lines: { level: number; msg: string; dpid?: string }[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    r = await rig({ vms: 1, extra: policies("{ enabled: true }"), logger });
    const errors: RecordPatch["lastError"][] = [];
    const patchRecord = r.store.patchRecord.bind(r.store);
    r.store.patchRecord = (dpid, patch) => {
      if (patch.lastError) errors.push(patch.lastError);
      return patchRecord(dpid, patch);
    };
    expect(await until(r, () => domState(r!, "rfvm1") === "running")).toBe(true);
    await r.clock.advance(30_100);
    await r.daemon.idle();
    await r.clock.advance(10);
    expect(domState(r, "rfvm1")).toBe("shut off");
    const rec = r.store.records.get(hex16(1n))!;
    expect(rec.state).toBe("failed");
    expect(rec.prewarming).toBeNull();
    const message = "VM rfvm1 not ready within readiness.timeoutSeconds (30 s): no console marker /GUEST-UP/";
    expect(rec.lastError).toMatchObject({ kind: "readiness-timeout", message });
    // One failure: one lastError written, one event, one log line, one failure counted.
    expect(errors.map((e) => e?.kind)).toEqual(["readiness-timeout"]);
    expect(
      r.store.events.filter((e) => e.kind === "error" || e.kind === "prewarm").map((e) => e.detail),
    ).toEqual([`failed: readiness-timeout: ${message}`]);
    expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual(["prewarm failed"]);
    expect(await metric(r, "rfboot_failures_total")).toBe(
      'rfboot_failures_total{step="prewarm",kind="readiness-timeout"} 1',
    );
    expect(await metric(r, "rfboot_prewarm_total")).toContain('rfboot_prewarm_total{outcome="failed"} 1');
    const starts = () => r!.libvirt.argsOf(uri(1), "start").length;
    expect(starts()).toBe(1);
    await r.clock.advance(20_000);
    expect(starts()).toBe(1);
    // The backoff (30 s from the failure) ends: tried again.
    await r.clock.advance(11_000);
    expect(starts()).toBe(2);
  });

  it("a VM whose image does not fit the disk budget is skipped, once, with an event", async () => {
    r = await rig({ vms: 2, extra: policies("{ enabled: true, diskMiB: 100 }") });
    await until(r, () => domState(r!, "rfvm1") === "running");
    await boot(r, "rfvm1");
    await r.clock.advance(50);
    expect(domState(r, "rfvm2")).toBe("none");
    expect(prewarmEvents(r)).toEqual([
      "rfvm2: skipped: disk budget (100 MiB) full on h1",
      "rfvm1: saved on h1 (64 MiB)",
    ]);
    expect(await metric(r, "rfboot_prewarm_total")).toContain('rfboot_prewarm_total{outcome="skipped"} 1');
  });

  it("a QEMU VM: the prewarm starts it paused with the console attached, as a join does; the join restores it", async () => {
    const libvirt = new FakeLibvirt();
    const stream = new FakeDomainConsole(libvirt);
    const REMOTE = "qemu+tcp://10.0.0.2/system";
    r = await rig({
      vms: 1,
      libvirt,
      uris: [REMOTE],
      defaults: "{ hypervisor: qemu, memoryMiB: 64 }",
      extra: policies("{ enabled: true }"),
      domainConsole: stream.watch,
      hostExtra: { 1: "images: path" },
    });
    const x = r;
    expect(await until(x, () => stream.watches.length === 1)).toBe(true);
    expect(stream.watches[0]).toMatchObject({ domain: "rfvm1", stateAtStart: "paused" });
    stream.watches[0]!.print(`rfboot: ${MARKER}`);
    expect(await until(x, () => x.seen.prewarmed.length === 1)).toBe(true);
    const calls = () =>
      libvirt.calls
        .filter((c) => ["start", "resume", "managedsave"].includes(c.args[0]!))
        .map((c) => c.args.join(" "));
    expect(calls()).toEqual(["start rfvm1 --paused", "resume rfvm1", "managedsave rfvm1"]);
    x.switches.join(1n);
    expect(await until(x, () => stream.watches.length === 2)).toBe(true);
    stream.watches[1]!.print("heartbeat");
    expect(await until(x, () => x.seen.ready.length === 1)).toBe(true);
    expect(x.seen.ready[0]?.via).toBe("console (restored)");
    expect(calls().slice(3)).toEqual(["start rfvm1 --paused", "resume rfvm1"]);
    expect(x.store.records.get(hex16(1n))).toMatchObject({ state: "ready", prewarm: null });
  });
  it("a prewarm cut short by the stop: cancelled, not failed; the stop waits for its VM's destroy; the next start prewarms it", async () => {
    const libvirt = new FakeLibvirt();
    const run = libvirt.run;
    // A destroy takes a while, as a real one does (1-2 s): the stop must wait for it, not the fake clock.
    (libvirt as { run: VirshRunner }).run = async (u, args) => {
      if (args[0] === "destroy") await new Promise((res) => setTimeout(res, 50));
      return run(u, args);
    };
    const extra = policies("{ enabled: true }");
    const first = await rig({ vms: 1, libvirt, extra });
    r = first;
    expect(await until(first, () => domState(first, "rfvm1") === "running")).toBe(true);
    await first.daemon.stop();
    expect(domState(first, "rfvm1")).toBe("shut off");
    const rec = first.store.records.get(hex16(1n))!;
    expect(rec).toMatchObject({ state: "stopped", prewarming: null });
    expect(rec.lastError ?? null).toBeNull();
    expect(first.store.events.filter((e) => e.kind === "error")).toEqual([]);
    expect(prewarmEvents(first)).toEqual([
      "rfvm1: cancelled: rfboot stopped before the VM was saved; VM destroyed on h1",
    ]);
    expect(await metric(first, "rfboot_prewarm_total")).toBe('rfboot_prewarm_total{outcome="cancelled"} 1');
    expect(await metric(first, "rfboot_failures_total")).toBe("");
    // The destroy came before the leases went and the store closed.
    const calls = first.store.calls;
    expect(calls.lastIndexOf("patchRecord")).toBeLessThan(calls.indexOf("close"));

    const next = await rig({
      vms: 1,
      extra,
      libvirt,
      clock: first.clock,
      store: first.store,
      stateDir: first.stateDir,
    });
    r = next;
    expect(await until(next, () => domState(next, "rfvm1") === "running")).toBe(true);
    expect(next.store.records.get(hex16(1n))?.prewarming).toMatchObject({ host: "h1" });
    await boot(next, "rfvm1");
    expect(next.store.records.get(hex16(1n))).toMatchObject({ state: "prewarmed", prewarming: null });
    expect(domState(next, "rfvm1")).toBe("shut off (saved)");
  });

  it("a stop during the prewarm's start: the start ends, then the VM is destroyed, no readiness awaited", async () => {
    const libvirt = new FakeLibvirt();
    const run = libvirt.run;
    let inStart = false;
    let release: () => void = () => undefined;
    const held = new Promise<void>((res) => (release = res));
    (libvirt as { run: VirshRunner }).run = async (u, args) => {
      if (args[0] === "start") {
        inStart = true;
        await held;
      }
      return run(u, args);
    };
    r = await rig({ vms: 1, libvirt, extra: policies("{ enabled: true }") });
    const x = r;
    expect(await until(x, () => inStart)).toBe(true);
    const stopping = x.daemon.stop();
    release();
    // The fake clock stands still: a readiness watch begun now would wait for ever, and the stop with it.
    await stopping;
    expect(domState(x, "rfvm1")).toBe("shut off");
    expect(x.store.records.get(hex16(1n))).toMatchObject({ state: "stopped", prewarming: null });
    expect(prewarmEvents(x)).toEqual([
      "rfvm1: cancelled: rfboot stopped before the VM was saved; VM destroyed on h1",
    ]);
  });

  /**
   * died leaves what an rfboot killed during rfvm1's prewarm boot leaves: the record marked `prewarming`, the
   * domain running (`running`) or not. It runs a daemon to the boot, stops it, then puts both back.
   */
  async function died(running: boolean): Promise<Rig> {
    const first = await rig({ vms: 1, extra: policies("{ enabled: true }") });
    expect(await until(first, () => domState(first, "rfvm1") === "running")).toBe(true);
    const left = first.store.records.get(hex16(1n))!;
    expect(left.prewarming).toBeTruthy();
    await first.daemon.stop();
    if (running) first.libvirt.host(uri(1)).domains.get("rfvm1")!.state = "running";
    first.store.records.set(hex16(1n), left);
    return first;
  }

  it("an rfboot that died during a prewarm boot: the next start takes the running boot over and saves it", async () => {
    const old = await died(true);
    r = await rig({
      vms: 1,
      extra: policies("{ enabled: true }"),
      libvirt: old.libvirt,
      clock: old.clock,
      store: old.store,
      stateDir: old.stateDir,
    });
    const x = r;
    expect(x.store.records.get(hex16(1n))?.prewarming).toMatchObject({ host: "h1" });
    const starts = x.libvirt.argsOf(uri(1), "start").length;
    await boot(x, "rfvm1");
    expect(x.store.records.get(hex16(1n))).toMatchObject({ state: "prewarmed", prewarming: null });
    expect(domState(x, "rfvm1")).toBe("shut off (saved)");
    // Adopted, not booted again.
    expect(x.libvirt.argsOf(uri(1), "start").length).toBe(starts);
  });

  it("an rfboot that died during a prewarm boot: the next start clears the mark when the domain is gone or prewarm is off", async () => {
    const gone = await died(false);
    r = await rig({
      vms: 1,
      extra: policies("{ enabled: false }"),
      libvirt: gone.libvirt,
      clock: gone.clock,
      store: gone.store,
      stateDir: gone.stateDir,
    });
    await r.clock.advance(100);
    expect(r.store.records.get(hex16(1n))).toMatchObject({ state: "stopped", prewarming: null });
    await r.stop();
    const runs = await died(true);
    r = await rig({
      vms: 1,
      extra: policies("{ enabled: false }"),
      libvirt: runs.libvirt,
      clock: runs.clock,
      store: runs.store,
      stateDir: runs.stateDir,
    });
    await r.clock.advance(100);
    // Prewarm off: nobody finishes the boot; the VM runs, for its switch to adopt.
    expect(r.store.records.get(hex16(1n))).toMatchObject({ state: "running", prewarming: null });
    expect(domState(r, "rfvm1")).toBe("running");
  });
});
