/**
 * Real libvirtd: virsh error classification provoked live, and the domain lifecycle (define/start/adopt/
 * rollback/leave/remove) on the test driver of a private libvirtd (test/helpers/libvirt-hosts.ts), through
 * both the persistent-shell runner and the spawn runner.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { VirshError } from "../../src/common/errors.js";
import { LibvirtEvents, type DomainEvent } from "../../src/provisioner/libvirt/libvirt-events.js";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import {
  createSpawnRunner,
  VirshShellRunner,
  type VirshRunner,
} from "../../src/provisioner/libvirt/virsh.js";
import { describeWith } from "../helpers/env.js";
import { startLibvirtHosts, stopLibvirtHosts, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";

const uuid = (n: number) => `0000rfbt-0000-4000-8000-${String(n).padStart(12, "0")}`.replace("rfbt", "abcd");
const xml = (name: string, u: string, memMiB = 64) =>
  `<domain type='test'><name>${name}</name><uuid>${u}</uuid><memory unit='MiB'>${memMiB}</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

describeWith(["libvirt", "root"], "libvirt lifecycle on a private libvirtd (test driver)", () => {
  let host: LibvirtTestHost;
  let shell: VirshShellRunner;
  const spawnRun = createSpawnRunner({ defaultTimeoutMs: 15_000 });
  let events: LibvirtEvents;
  const seen: DomainEvent[] = [];
  let mgr: DomainManager;

  beforeAll(async () => {
    [host] = (await startLibvirtHosts(1, { prefix: "rfbtv-lc" })) as [LibvirtTestHost];
    shell = new VirshShellRunner({ defaultTimeoutMs: 15_000 });
    mgr = new DomainManager({
      host: { name: host.name, uri: host.testUri },
      run: shell.run,
      shutdownTimeoutMs: 3000,
      pollMs: 50,
    });
    events = new LibvirtEvents({ host: { name: host.name, uri: host.testUri } });
    events.on("event", (e: DomainEvent) => seen.push(e));
    events.start();
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    await events?.stop();
    await shell?.close();
    await mgr?.dispose();
    if (host) await stopLibvirtHosts([host]);
  });

  const failure = async (run: VirshRunner, uri: string, args: string[]) => {
    const e = await run(uri, args).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(VirshError);
    return e as VirshError;
  };

  it("classifies live errors identically through the spawn and shell runners", async () => {
    const u = host.testUri;
    await mgr.define("rfbtv-cls", xml("rfbtv-cls", uuid(1)));
    await spawnRun(u, ["start", "rfbtv-cls"]);
    const cases: [string, string[], string][] = [
      ["domain-missing", ["domstate", "rfbtv-nosuch"], "failed to get domain 'rfbtv-nosuch'"],
      ["already-running", ["start", "rfbtv-cls"], "Domain is already active"],
    ];
    for (const [kind, args, text] of cases) {
      for (const run of [spawnRun, shell.run]) {
        const e = await failure(run, u, args);
        expect(e.kind).toBe(kind);
        expect(e.stderr).toContain(text);
        expect(e.args).toEqual(args);
      }
    }
    await spawnRun(u, ["destroy", "rfbtv-cls"]);
    for (const run of [spawnRun, shell.run]) {
      expect((await failure(run, u, ["destroy", "rfbtv-cls"])).kind).toBe("not-running");
      expect((await failure(run, u, ["managedsave", "rfbtv-cls"])).kind).toBe("not-running");
    }
    // Same name, other uuid; same uuid, other name.
    const other = new DomainManager({ host: { name: "x", uri: u }, run: spawnRun });
    const clash1 = await other.define("rfbtv-cls", xml("rfbtv-cls", uuid(2))).catch((x: unknown) => x);
    expect((clash1 as VirshError).kind).toBe("already-exists");
    expect((clash1 as VirshError).stderr).toContain(`already exists with uuid ${uuid(1)}`);
    const clash2 = await mgr.define("rfbtv-cls2", xml("rfbtv-cls2", uuid(1))).catch((x: unknown) => x);
    expect((clash2 as VirshError).kind).toBe("already-exists");
    expect((clash2 as VirshError).stderr).toContain(`is already defined with uuid ${uuid(1)}`);
    await other.dispose();
    const bad = "test+unix:///default?socket=/run/rfbt-hosts/none/libvirt-sock";
    for (const run of [spawnRun, shell.run]) {
      const e = await failure(run, bad, ["list"]);
      expect(e.kind).toBe("unreachable");
      expect(e.stderr).toContain("Failed to connect socket to '/run/rfbt-hosts/none/libvirt-sock'");
    }
    expect(await mgr.remove("rfbtv-cls")).toBe(true);
  });

  it("ensureRunning: define+start, then adopt without restarting, then resume a paused domain", async () => {
    const spec = { name: "rfbtv-a", uuid: uuid(10), xml: xml("rfbtv-a", uuid(10)) };
    const r1 = await mgr.ensureRunning(spec);
    expect(r1.action).toBe("defined+started");
    const r2 = await mgr.ensureRunning(spec);
    expect(r2.action).toBe("adopted");
    expect((await mgr.state("rfbtv-a"))?.state).toBe("running");
    await new Promise((r) => setTimeout(r, 200));
    const started = seen.filter(
      (e) => e.domain === "rfbtv-a" && e.type === "lifecycle" && e.event === "Started",
    );
    expect(started).toHaveLength(1); // adopted, never restarted
    await shell.run(host.testUri, ["suspend", "rfbtv-a"]);
    expect((await mgr.ensureRunning(spec)).action).toBe("resumed");
    expect((await mgr.state("rfbtv-a"))?.state).toBe("running");
  });

  it("leave suspend (managedsave) then ensureRunning starts it from the saved image", async () => {
    expect(await mgr.leave("rfbtv-a", "suspend")).toBe("saved");
    expect(await mgr.state("rfbtv-a")).toEqual({ state: "shutoff", reason: "saved" });
    const listed = (await mgr.list()).find((d) => d.name === "rfbtv-a");
    expect(listed).toMatchObject({ uuid: uuid(10), state: "shutoff", managedSave: true });
    // Unchanged definition (as the daemon passes it): restored. A redefine would remove the image first.
    const r = await mgr.ensureRunning({
      name: "rfbtv-a",
      uuid: uuid(10),
      xml: xml("rfbtv-a", uuid(10)),
      redefine: false,
    });
    expect(r).toMatchObject({ action: "started", restored: true });
    await new Promise((res) => setTimeout(res, 200));
    const stopped = seen.find(
      (e) => e.domain === "rfbtv-a" && e.type === "lifecycle" && e.event === "Stopped",
    );
    expect(stopped).toMatchObject({ detail: "Saved" });
  });

  it("leave shutdown and destroy; leave of a stopped or missing domain is not an error", async () => {
    expect(await mgr.leave("rfbtv-a", "shutdown")).toBe("shutdown");
    expect((await mgr.state("rfbtv-a"))?.state).toBe("shutoff");
    expect(await mgr.leave("rfbtv-a", "destroy")).toBe("not-running");
    expect(
      (await mgr.ensureRunning({ name: "rfbtv-a", uuid: uuid(10), xml: xml("rfbtv-a", uuid(10)) })).action,
    ).toBe("started");
    expect(await mgr.leave("rfbtv-a", "destroy")).toBe("destroyed");
    expect(await mgr.leave("rfbtv-nosuch", "destroy")).toBe("missing");
    expect(await mgr.leave("rfbtv-a", "keep")).toBe("kept");
  });

  it("a failed start rolls back the domain this attempt defined; an existing one is kept", async () => {
    // The test driver cannot be made to fail a start, so the fault is injected at the seam; define/undefine are real.
    const failing: VirshRunner = async (uri, args, o) => {
      if (args[0] === "start")
        throw new VirshError("injected", "other", args, "error: injected start failure", 1);
      return shell.run(uri, args, o);
    };
    const m = new DomainManager({ host: { name: host.name, uri: host.testUri }, run: failing });
    await expect(
      m.ensureRunning({ name: "rfbtv-rb", uuid: uuid(20), xml: xml("rfbtv-rb", uuid(20)) }),
    ).rejects.toThrow(/injected/);
    expect(await mgr.state("rfbtv-rb")).toBeUndefined();
    await expect(
      m.ensureRunning({ name: "rfbtv-a", uuid: uuid(10), xml: xml("rfbtv-a", uuid(10)) }),
    ).rejects.toThrow(/injected/);
    expect((await mgr.state("rfbtv-a"))?.state).toBe("shutoff");
    await m.dispose();
  });

  it("ensureRunning refuses to take over a domain of the same name with another uuid", async () => {
    const e = await mgr
      .ensureRunning({ name: "rfbtv-a", uuid: uuid(99), xml: xml("rfbtv-a", uuid(99)) })
      .catch((x: unknown) => x);
    expect((e as VirshError).kind).toBe("already-exists");
    expect((await mgr.list()).find((d) => d.name === "rfbtv-a")?.uuid).toBe(uuid(10));
  });

  it("remove undefines (with managed-save image); list reflects it; events saw Defined..Undefined", async () => {
    await mgr.ensureRunning({ name: "rfbtv-a", uuid: uuid(10), xml: xml("rfbtv-a", uuid(10)) });
    await mgr.leave("rfbtv-a", "suspend");
    expect(await mgr.remove("rfbtv-a")).toBe(true);
    expect(await mgr.remove("rfbtv-a")).toBe(false);
    expect((await mgr.list()).map((d) => d.name)).not.toContain("rfbtv-a");
    await new Promise((r) => setTimeout(r, 200));
    const kinds = seen
      .filter((e) => e.domain === "rfbtv-a" && e.type === "lifecycle")
      .map((e) => (e.type === "lifecycle" ? e.event : ""));
    expect(kinds[0]).toBe("Defined");
    expect(kinds.at(-1)).toBe("Undefined");
    expect(shell.stats.shell).toBeGreaterThan(20);
  });
});
