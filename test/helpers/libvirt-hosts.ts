/**
 * Extra libvirt "hosts" for tests: each is its own libvirtd in a private mount namespace (`unshare -m`) with
 * tmpfs over /var/run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt/qemu, /etc/libvirt/lxc and
 * /etc/libvirt/storage (persistent pool definitions), so its drivers share no state with the machine's
 * libvirtd or with each other. Its unix socket lives in a
 * directory visible to the host (/run/rfbt-hosts/NAME), reached as
 *   test+unix:///default?socket=/run/rfbt-hosts/NAME/libvirt-sock   (test driver: fast, for volume)
 *   qemu+unix:///system?socket=/run/rfbt-hosts/NAME/libvirt-sock    (real qemu domains; logs to files)
 * A keeper connection (`virsh event --loop`) holds the test driver's state alive between short virsh calls,
 * as a real host keeps its domains. `stopLibvirtHosts` destroys what is running there, stops the daemon, kills
 * any leftover process of its namespace and removes its directory: nothing is left behind.
 * Needs root (unshare -m, mount). Starting one host takes ~0.1-0.3 s.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nsOf, pidsInNs, waitExit } from "./ns-procs.js";

/** HOSTS_ROOT holds one directory per extra host (socket, pid file, config, logs). */
export const HOSTS_ROOT = "/run/rfbt-hosts";

/** LibvirtTestHost is one running extra libvirtd. */
export interface LibvirtTestHost {
  name: string;
  dir: string;
  socket: string;
  /** testUri reaches the host's test driver (`test+unix:///default?socket=...`). */
  testUri: string;
  /** qemuUri reaches the host's qemu driver (`qemu+unix:///system?socket=...`). */
  qemuUri: string;
  pid: number;
  /** privateDirs are the host's own tmpfs directories (see StartHostsOptions); `/proc/PID/root` reads them. */
  privateDirs: string[];
  /** @internal */
  daemon: ChildProcess;
  /** @internal */
  keeper?: ChildProcess;
}

/** StartOptions for startLibvirtHosts. */
export interface StartHostsOptions {
  /** prefix of host names (default `rfbt-h`); names are `${prefix}${i}-${process.pid}`. */
  prefix?: string;
  /** keepAlive holds a connection open so test-driver state persists between calls (default true). */
  keepAlive?: boolean;
  /** timeoutMs to wait for each socket (default 15 s). */
  timeoutMs?: number;
  /**
   * setup gives extra shell lines run inside the host's mount namespace just before libvirtd starts, e.g. to
   * bind-mount something over a device; `dir` is the host's directory (removed when the host stops).
   */
  setup?: (dir: string) => string[];
  /**
   * privateDirs are directories given a tmpfs of their own inside the host's mount namespace: what the host
   * writes there (a storage pool's volumes, console logs) is invisible to the test process, as on a remote
   * machine. The empty mount points themselves are made (and removed at stop) in the shared filesystem.
   */
  privateDirs?: readonly string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ENV = { ...process.env, LC_ALL: "C" };

function virshOk(uri: string, args: string[]): string | undefined {
  try {
    return execFileSync("virsh", ["-c", uri, ...args], {
      env: ENV,
      timeout: 10_000,
      stdio: ["ignore", "pipe", "ignore"],
    }).toString();
  } catch {
    return undefined;
  }
}

/** startLibvirtHost starts one extra libvirtd named `name`. */
export async function startLibvirtHost(name: string, opts: StartHostsOptions = {}): Promise<LibvirtTestHost> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad test host name ${name}`);
  const dir = join(HOSTS_ROOT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "log"), { recursive: true, mode: 0o755 });
  const conf = join(dir, "libvirtd.conf");
  writeFileSync(
    conf,
    [
      `unix_sock_dir = "${dir}"`,
      `unix_sock_rw_perms = "0770"`,
      `auth_unix_rw = "none"`,
      `auth_unix_ro = "none"`,
      `log_outputs = "3:file:${dir}/log/libvirtd.log"`,
      "",
    ].join("\n"),
  );
  // qemu.conf for this host: virtlogd's socket is hidden by the tmpfs, so qemu logs go to plain files.
  const qemuConf = join(dir, "qemu.conf");
  writeFileSync(qemuConf, 'stdio_handler = "file"\n');
  const script = [
    "set -e",
    "for d in /var/run/libvirt /var/lib/libvirt /var/cache/libvirt /etc/libvirt/qemu /etc/libvirt/lxc /etc/libvirt/storage; do",
    '  mkdir -p "$d"; mount -t tmpfs -o mode=0755 tmpfs "$d"',
    "done",
    "mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/lib/libvirt/images /var/run/libvirt/qemu",
    "chown libvirt-qemu:kvm /var/lib/libvirt/qemu 2>/dev/null || true",
    `mount --bind ${qemuConf} /etc/libvirt/qemu.conf`,
    ...(opts.privateDirs ?? []).flatMap((d) => [
      `mkdir -p '${d}'`,
      `mount -t tmpfs -o mode=0755 tmpfs '${d}'`,
    ]),
    ...(opts.setup?.(dir) ?? []),
    `exec libvirtd -f ${conf} -p ${dir}/libvirtd.pid`,
  ].join("\n");
  const daemon = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script], {
    stdio: ["ignore", "ignore", "pipe"],
    env: ENV,
  });
  let stderr = "";
  daemon.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const socket = join(dir, "libvirt-sock");
  const testUri = `test+unix:///default?socket=${socket}`;
  const qemuUri = `qemu+unix:///system?socket=${socket}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (daemon.exitCode !== null) throw new Error(`libvirtd for ${name} exited: ${stderr.trim()}`);
    if (existsSync(socket) && virshOk(testUri, ["uri"]) !== undefined) break;
    await sleep(30);
  }
  if (!existsSync(socket)) {
    daemon.kill("SIGKILL");
    throw new Error(`libvirtd for ${name} did not open ${socket}: ${stderr.trim()}`);
  }
  const host: LibvirtTestHost = {
    name,
    dir,
    socket,
    testUri,
    qemuUri,
    pid: daemon.pid ?? -1,
    daemon,
    privateDirs: [...(opts.privateDirs ?? [])],
  };
  if (opts.keepAlive !== false) {
    host.keeper = spawn("virsh", ["-c", testUri, "event", "--loop", "--all"], { stdio: "ignore", env: ENV });
  }
  return host;
}

/** startLibvirtHosts starts `n` extra libvirtd hosts in parallel. */
export async function startLibvirtHosts(n: number, opts: StartHostsOptions = {}): Promise<LibvirtTestHost[]> {
  const prefix = opts.prefix ?? "rfbt-h";
  const started = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => startLibvirtHost(`${prefix}${i + 1}-${process.pid}`, opts)),
  );
  const ok = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const bad = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (bad) {
    await stopLibvirtHosts(ok);
    throw bad.reason;
  }
  return ok;
}

/** stopLibvirtHost destroys the host's running qemu domains, stops libvirtd and removes its directory. */
export async function stopLibvirtHost(host: LibvirtTestHost): Promise<void> {
  const ns = nsOf(host.pid);
  const hostNs = nsOf(process.pid);
  // qemu processes outlive libvirtd: destroy them through it first.
  const running = virshOk(host.qemuUri, ["list", "--name"]);
  for (const vm of (running ?? "")
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean)) {
    virshOk(host.qemuUri, ["destroy", vm]);
  }
  host.keeper?.kill("SIGKILL");
  if (host.keeper) await waitExit(host.keeper, 2000);
  host.daemon.kill("SIGTERM");
  if (!(await waitExit(host.daemon, 5000))) {
    host.daemon.kill("SIGKILL");
    await waitExit(host.daemon, 2000);
  }
  // Anything else still in that namespace (a stray qemu, dnsmasq) is ours to end.
  if (ns && ns !== hostNs) {
    for (const pid of pidsInNs(ns, -1)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  rmSync(host.dir, { recursive: true, force: true });
  for (const d of host.privateDirs) rmSync(d, { recursive: true, force: true });
}

/** stopLibvirtHosts stops several hosts in parallel. */
export async function stopLibvirtHosts(hosts: readonly LibvirtTestHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => stopLibvirtHost(h)));
}

/**
 * removePools stops and undefines storage pools (and their `-console` companions) that a test's rfboot made
 * on `uri`; the directories are the test's to remove. Missing pools are fine.
 */
export function removePools(uri: string, pools: readonly string[]): void {
  for (const p of pools.flatMap((x) => [x, `${x}-console`])) {
    virshOk(uri, ["pool-destroy", p]);
    virshOk(uri, ["pool-undefine", p]);
  }
}
