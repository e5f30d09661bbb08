/**
 * Stopping and restarting a private libvirtd host (test/helpers/libvirt-hosts.ts) under the same name and
 * socket, as a libvirtd restart or a host reboot would: the test driver keeps its state in memory, so the
 * restarted host has no domains (like a rebooted host whose domains were transient).
 */
import { readdirSync, readlinkSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { startLibvirtHost, type LibvirtTestHost } from "../../helpers/libvirt-hosts.js";

function mntNs(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

async function waitExit(child: ChildProcess | undefined, ms: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((res) => {
    const t = setTimeout(res, ms);
    child.once("exit", () => {
      clearTimeout(t);
      res();
    });
  });
}

/** haltLibvirtHost stops the host's libvirtd (and everything in its namespace) but keeps its name. */
export async function haltLibvirtHost(host: LibvirtTestHost): Promise<void> {
  const ns = mntNs(host.pid);
  const own = mntNs(process.pid);
  host.keeper?.kill("SIGKILL");
  await waitExit(host.keeper, 2000);
  host.daemon.kill("SIGTERM");
  await waitExit(host.daemon, 5000);
  if (host.daemon.exitCode === null && host.daemon.signalCode === null) {
    host.daemon.kill("SIGKILL");
    await waitExit(host.daemon, 2000);
  }
  if (ns && ns !== own) {
    for (const e of readdirSync("/proc")) {
      const pid = Number(e);
      if (!Number.isInteger(pid) || pid === process.pid || mntNs(pid) !== ns) continue;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** restartLibvirtHost starts a fresh libvirtd under the same name and socket path; mutates `host` in place. */
export async function restartLibvirtHost(host: LibvirtTestHost): Promise<LibvirtTestHost> {
  const fresh = await startLibvirtHost(host.name);
  Object.assign(host, fresh);
  return host;
}
