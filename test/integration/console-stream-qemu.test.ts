/**
 * Readiness through the console stream, for real: the daemon boots a QEMU (TCG) guest on a private libvirtd
 * (test/helpers/libvirt-hosts.ts) whose console log directory is a tmpfs mounted in that libvirtd's own mount
 * namespace, so the log file qemu writes there is invisible to rfboot, as on a remote host. The guest still
 * becomes `ready` by its boot marker, read through `virsh console` over the host's URI; the console is
 * released then, and an operator's `virsh console` attaches and sees the guest's heartbeat. Then the
 * restored path: managedsave on leave, and on the next join a restore (paused, console, resume) that is
 * ready by its first new console output. Last, why the start is paused: after a plain start the stream
 * misses the kernel's first line, which it sees when attached between `start --paused` and `resume`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConsoleError } from "../../src/common/errors.js";
import { createSpawnRunner, watchDomainConsole } from "../../src/provisioner/libvirt/index.js";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import type { Daemon, RfbootConfig } from "../../src/provisioner/index.js";
import { describeWith } from "../helpers/env.js";
import { startLibvirtHost, stopLibvirtHost, type LibvirtTestHost } from "../helpers/libvirt-hosts.js";
import { startQemuRig, type QemuRig } from "../helpers/qemu-rig.js";
import { addSwitch, sh, shOk, until } from "../helpers/real.js";

/** consoleProcesses lists live processes whose command line attaches a console to `domain`. */
function consoleProcesses(domain: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
      const env = readFileSync(`/proc/${pid}/environ`, "utf8");
      if (state !== "Z" && (argv.includes(domain) || env.includes(`RFBOOT_CONSOLE_DOMAIN=${domain}`)))
        out.push(`${pid} ${argv.join(" ")}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * operatorConsole runs `virsh console` as an operator would, under `script` for a terminal, for `ms`. The
 * shell command is constant; the URI and domain come in through the environment.
 */
async function operatorConsole(uri: string, domain: string, ms: number): Promise<string> {
  const r = await execa(
    "script",
    ["-q", "-e", "-c", 'exec virsh -c "$CON_URI" console "$CON_DOMAIN"', "/dev/null"],
    // stdin stays an open pipe (an EOF would be typed into the guest) until the timeout ends it.
    { env: { LC_ALL: "C", CON_URI: uri, CON_DOMAIN: domain }, reject: false, timeout: ms, stdin: "pipe" },
  );
  return String(r.stdout).replace(/\r/g, "");
}

describeWith(
  ["ovs", "libvirt", "mongo", "root"],
  "readiness through the console stream of a qemu guest whose console log rfboot cannot see",
  () => {
    let rig: QemuRig;
    let logDir: string;
    let host: LibvirtTestHost | undefined;
    let daemon: Daemon | undefined;
    let VM: string;
    let SWITCH: string;
    let DPID: string;
    const ready: { via: string; ms: number }[] = [];

    const record = () => rig.db.collection("rfboot_vms").findOne({ vmName: VM });
    /** hostFile reads a file as the private libvirtd sees it (inside its mount namespace). */
    const hostFile = async (path: string) =>
      (await execa("nsenter", ["-t", String(host!.pid), "-m", "cat", path], { reject: false })).stdout;

    function config(): RfbootConfig {
      return rig.config({
        hosts: [rig.host({ name: "hidden", uri: host!.qemuUri, consoleLogDir: logDir })],
        datapaths: { [`0x${DPID}`]: { name: VM, vmId: "06:c0:c0:c0:c0:c0", dataPorts: 0 } },
        policies: { leave: { action: "suspend", graceSeconds: 1 } },
        readiness: { timeoutSeconds: 90 },
      });
    }

    beforeAll(async () => {
      rig = await startQemuRig({ letter: "c" });
      VM = rig.vm();
      SWITCH = rig.switchName();
      DPID = rig.dpid();
      logDir = join(rig.stateDir, "host-console");
      mkdirSync(logDir, { recursive: true });
      host = await startLibvirtHost(`rfbt-cs-${process.pid}`, {
        keepAlive: false,
        // The host's console logs live in its own namespace only: rfboot's process sees an empty directory.
        setup: () => [`mount -t tmpfs -o mode=0777 tmpfs ${logDir}`],
      });
    }, 60_000);

    afterAll(async () => {
      // The rig's domains and pools are on the private host: the rig is cleared while the host still runs.
      try {
        await rig?.cleanup();
      } finally {
        if (host) await stopLibvirtHost(host);
      }
    });

    it("the guest is ready by its marker read through the console stream; the log exists only on its host", async () => {
      daemon = rig.daemon(config());
      daemon.on("ready", (e) => ready.push({ via: e.via, ms: e.ms }));
      await daemon.start();
      await addSwitch(SWITCH, DPID, rig.port);
      const rec = await until(
        "record ready",
        async () => {
          const r = await record();
          return r?.state === "ready" ? r : undefined;
        },
        80_000,
      );
      expect(rec).toMatchObject({ host: "hidden", hypervisor: "qemu" });
      expect(ready.map((e) => e.via)).toEqual(["console"]);
      console.log(`join -> ready through the stream on the private host: ${Math.round(ready[0]!.ms)} ms`);
      // rfboot cannot read the log: its directory here is empty; on the host the guest's whole boot is in it.
      const logPath = join(logDir, `${VM}.log`);
      expect(existsSync(logPath)).toBe(false);
      const hostLog = await until("the log on the host", async () => {
        const t = await hostFile(logPath);
        return t.includes("RFBOOT-GUEST-BOOTED") ? t : undefined;
      });
      expect(hostLog).toContain(`RFBOOT-GUEST-BOOTED name=${VM}`);
      expect(hostLog.split("\n")[0]).toMatch(/Linux version/);
      const st = (await sh("virsh", ["-c", host!.qemuUri, "domstate", VM, "--reason"])).trim();
      expect(st).toBe("running (unpaused)");
    }, 100_000);

    it("the console is released: no console process of rfboot's is left, and an operator's virsh console sees the heartbeat", async () => {
      await until("rfboot's console process gone", () => consoleProcesses(VM).length === 0, 10_000, 100);
      const seen = await operatorConsole(host!.qemuUri, VM, 3_000);
      expect(seen).toContain(`Connected to domain '${VM}'`);
      expect(seen).toMatch(/RFBOOT-HEARTBEAT n=\d+/);
      expect(seen).not.toContain("Active console session");
    }, 20_000);

    it("leave -> managedsave; the next join restores it paused, attaches, resumes, and it is ready by its first output", async () => {
      await sh("ovs-vsctl", ["del-br", SWITCH]);
      await until(
        "record suspended",
        async () => ((await record())?.state === "suspended" ? true : undefined),
        60_000,
      );
      const saved = (await sh("virsh", ["-c", host!.qemuUri, "domstate", VM, "--reason"])).trim();
      expect(saved).toBe("shut off (saved)");
      const actions: string[] = [];
      daemon!.on("ensured", (e) => actions.push(e.action));
      await addSwitch(SWITCH, DPID, rig.port);
      await until("ready again", () => ready.length === 2, 30_000, 100);
      expect(actions).toEqual(["started"]);
      expect(ready[1]!.via).toBe("console (restored)");
      // Restored, not rebooted: the log on the host (truncated by the restore) has heartbeats, no boot marker.
      const after = await until("a heartbeat in the host's log", async () => {
        const t = await hostFile(join(logDir, `${VM}.log`));
        return /RFBOOT-HEARTBEAT/.test(t) ? t : undefined;
      });
      expect(after).not.toContain("RFBOOT-GUEST-BOOTED");
      await daemon!.stop();
      daemon = undefined;
    }, 100_000);

    // The reason for the paused start, shown on the real host: QEMU's pty drops what the guest printed while
    // nobody read it, so a console attached after a plain start misses the kernel's first line; attached
    // between `start --paused` and `resume` it sees it.
    it("a plain start loses the guest's first console line; the paused start, attach, resume keeps it", async () => {
      const uri = host!.qemuUri;
      const first = /^\[\s*0\.000000\] Linux version/;
      const mgr = new DomainManager({ host: { name: "hidden", uri }, run: createSpawnRunner() });
      await shOk("virsh", ["-c", uri, "managedsave-remove", VM]);
      await shOk("virsh", ["-c", uri, "destroy", VM]);
      await mgr.ensureRunning({ name: VM, xml: "", redefine: false });
      await until("the boot marker in the host's log", async () =>
        (await hostFile(join(logDir, `${VM}.log`))).includes("RFBOOT-GUEST-BOOTED") ? true : undefined,
      );
      const late = await watchDomainConsole({ uri, domain: VM, marker: first, timeoutMs: 2_000 }).catch(
        (e: unknown) => e,
      );
      expect(late).toBeInstanceOf(ConsoleError);
      expect((late as ConsoleError).kind).toBe("timeout");
      await sh("virsh", ["-c", uri, "destroy", VM]);

      let seen: Promise<unknown> | undefined;
      const res = await mgr.ensureRunning({
        name: VM,
        xml: "",
        redefine: false,
        beforeRun: () =>
          new Promise<void>((attached) => {
            seen = watchDomainConsole({
              uri,
              domain: VM,
              marker: first,
              timeoutMs: 30_000,
              onAttached: attached,
            });
            seen.catch(() => attached());
          }),
      });
      expect(res.action).toBe("started");
      await expect(seen).resolves.toMatchObject({ line: expect.stringMatching(/Linux version/) });
      await mgr.dispose();
    }, 60_000);
  },
);
