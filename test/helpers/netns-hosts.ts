/**
 * Remote libvirt hosts for tests, reached over the network as a real remote host is. Each host has
 *  - its own network namespace (`ip netns add`), linked to the machine by a veth pair with a /30 of its own
 *    (root side .1, host side .2, MTU 1600 so that a tagged 1500-byte frame fits in a VXLAN packet);
 *  - its own mount namespace, where tmpfs covers libvirt's and Open vSwitch's state directories and
 *    /var/lib/rfboot (the default disk and console directories, `/var/lib/rfboot/disks` and `/console`): the
 *    test process, and an rfboot running beside it, cannot see any of it. The guest files, when asked for,
 *    are bound read-only at /var/lib/rfboot/guest inside;
 *  - its own Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath) with a bridge (`br-rf`) where
 *    the VMs' data NICs land: libvirt's `<virtualport type='openvswitch'/>` runs ovs-vsctl inside the mount
 *    namespace and so reaches this host's ovsdb;
 *  - a trunk to the machine's Open vSwitch: a kernel VXLAN device in the namespace (`trunk0`, a port of
 *    `br-rf`) and its peer on the root side (a port of a per-host trunk bridge, userspace datapath), so
 *    frames with VLAN tags cross between the host's bridge and the trunk bridge;
 *  - its own virtlogd and libvirtd, the latter listening on TCP without authentication on the host's address
 *    only (`qemu+tcp://ADDR/system`, `test+tcp://ADDR/default`).
 * Everything runs under `tini -s` in the namespaces, which reaps what libvirt daemonizes (QEMU).
 * `stopNetnsHost` destroys the domains, ends every process of the namespaces, deletes the namespace, the
 * root-side links and the trunk bridge; `netnsHostLeftovers` lists anything that survived.
 * With `ssh`, an sshd in the namespaces too, for `qemu+ssh://` (key auth with a key pair made for the host;
 * sshd's privilege separation directory /run/sshd is made on the machine when missing, as its package does).
 * Needs root, iproute2, Open vSwitch, libvirt and tini (and openssh-server for `ssh`). Starting two hosts in
 * parallel took 2.5-3.5 s on an idle 2-core machine, up to 8 s on a busy one: libvirtd probes QEMU once, its
 * capability cache being in the fresh tmpfs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { nsOf, pidsInNs, waitExit } from "./ns-procs.js";
import { alive, sleep } from "./real.js";

/** NETNS_HOSTS_ROOT holds one directory per host (daemon configs, pid files, daemon logs), visible to the test. */
export const NETNS_HOSTS_ROOT = "/run/rfbt-nh";

/** HOST_STATE_DIR is rfboot's default state directory, which every host has privately (a tmpfs). */
export const HOST_STATE_DIR = "/var/lib/rfboot";

/** NetnsHostOptions shape one host; every field has a default derived from `index` and the test's pid. */
export interface NetnsHostOptions {
  /** index (1..999) names the host: `rfbt-nh<index>-<pid>` and its links. */
  index: number;
  /** guestDir is bound read-only at /var/lib/rfboot/guest inside the host (kernel, initrd for the VMs). */
  guestDir?: string;
  /** bridge is the host's OVS bridge for the VMs' data NICs (default `br-rf`). */
  bridge?: string;
  /** trunkBridge is the root OVS bridge that ends the host's trunk (default `rft<index>-<pid>`). */
  trunkBridge?: string;
  /** vni of the trunk's VXLAN (default from the pid and index, so parallel test runs do not collide). */
  vni?: number;
  /** subnet is the /30's first address (`10.213.7.0`); default from the pid and index, in 10.213.0.0/16. */
  subnet?: string;
  /** timeoutMs to wait for libvirtd to answer on TCP (default 60 s: a busy machine's QEMU probe is slow). */
  timeoutMs?: number;
  /**
   * ssh also runs an sshd on the host's address (key auth only, a test-only key pair made for the host, its
   * host key pinned in a private known_hosts): `sshUri` reaches libvirtd as `qemu+ssh://`.
   */
  ssh?: boolean;
  /**
   * setup returns shell lines run inside the host's namespaces after its mounts and before its libvirtd starts
   * (given the host's directory, to write files there), e.g. a bind mount of a written /proc/meminfo.
   */
  setup?: (dir: string) => string[];
}

/** NetnsHost is one running host. */
export interface NetnsHost {
  name: string;
  /** netns is the network namespace's name (`ip netns exec NAME`, `ip -n NAME`). */
  netns: string;
  /** dir is the test-visible directory of the host's daemon configs and logs. */
  dir: string;
  /** addr is the host's address (libvirtd listens there); rootAddr is the machine's end of the veth. */
  addr: string;
  rootAddr: string;
  /** uri is the host's qemu driver over TCP; testUri its test driver. */
  uri: string;
  testUri: string;
  /** sshUri reaches the qemu driver over ssh (`qemu+ssh://root@ADDR/system?command=...`), with `ssh`. */
  sshUri?: string;
  /** bridge is the host's OVS bridge for data NICs; trunkPort its VXLAN port on that bridge. */
  bridge: string;
  trunkPort: string;
  /** trunkBridge is the root OVS bridge of this host's trunk; rootVxlan its VXLAN port; rootVeth the veth. */
  trunkBridge: string;
  rootVxlan: string;
  rootVeth: string;
  vni: number;
  /** storageDir and consoleDir are the host's private disk and console directories. */
  storageDir: string;
  consoleDir: string;
  /** guestDir is where the guest files are inside the host, when `guestDir` was given. */
  guestDir?: string;
  /** pid is tini's, the first process of both namespaces. */
  pid: number;
  /** mntNs and netNs identify the namespaces (`mnt:[...]`), to find leftovers after they are gone. */
  mntNs: string;
  netNs: string;
  /** startMs is how long the start took, from `ip netns add` to libvirtd answering on TCP. */
  startMs: number;
  /** @internal */
  daemon: ChildProcess;
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const ENV = { ...process.env, LC_ALL: "C" };

// The host's first shell, run by `tini -s` inside both namespaces. Its arguments are validated names and
// paths (startNetnsHost); it mounts the private state, starts OVS and makes the bridge with the trunk port,
// then starts virtlogd and libvirtd and waits: tini stays the parent of them all and reaps what they leave.
const HOST_SCRIPT = String.raw`set -eu
dir="$1"; bridge="$2"; trunk="$3"; guest="$4"
# The machine's QEMU capability cache seeds the host's (same binaries, same kernel): libvirtd then skips its
# probe of QEMU, seconds under TCG. A cache it finds stale it probes again, as it would anyway.
if [ -d /var/cache/libvirt/qemu/capabilities ]; then
  mkdir -p "$dir/caps"
  cp -p /var/cache/libvirt/qemu/capabilities/*.xml "$dir/caps/" 2>/dev/null || true
fi
for d in /var/run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt/qemu \
  /etc/libvirt/lxc /var/run/openvswitch /etc/openvswitch /var/log/openvswitch /var/lib/openvswitch; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/lib/libvirt/images /var/run/libvirt/qemu
chown libvirt-qemu:kvm /var/lib/libvirt/qemu 2>/dev/null || true
if [ -d "$dir/caps" ]; then
  mkdir -p /var/cache/libvirt/qemu/capabilities
  cp -p "$dir/caps/"*.xml /var/cache/libvirt/qemu/capabilities/ 2>/dev/null || true
  rm -rf "$dir/caps"
fi
# /var/lib/rfboot: a tmpfs of its own; the guest files are staged first, since the tmpfs may hide them.
mkdir -p /var/lib/rfboot
if [ -n "$guest" ]; then
  mkdir -p "$dir/stage"
  mount --bind "$guest" "$dir/stage"
fi
mount -t tmpfs -o mode=0755 tmpfs /var/lib/rfboot
mkdir -p /var/lib/rfboot/disks /var/lib/rfboot/console
if [ -n "$guest" ]; then
  mkdir /var/lib/rfboot/guest
  mount --bind "$dir/stage" /var/lib/rfboot/guest
  mount -o remount,bind,ro /var/lib/rfboot/guest
  umount "$dir/stage"
fi
ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server /etc/openvswitch/conf.db --remote=punix:/var/run/openvswitch/db.sock \
  --pidfile=/var/run/openvswitch/ovsdb-server.pid --no-chdir --log-file="$dir/log/ovsdb-server.log" -vconsole:off &
ovs-vsctl --timeout=20 --retry --no-wait init
ovs-vswitchd unix:/var/run/openvswitch/db.sock --pidfile=/var/run/openvswitch/ovs-vswitchd.pid --no-chdir \
  --log-file="$dir/log/ovs-vswitchd.log" -vconsole:off &
ovs-vsctl --timeout=20 add-br "$bridge" -- set bridge "$bridge" datapath_type=netdev fail_mode=standalone \
  -- add-port "$bridge" "$trunk"
if [ -f "$dir/sshd_config" ]; then
  mkdir -p /run/sshd
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>>"$dir/log/sshd.log" &
fi
if [ -f "$dir/setup.sh" ]; then . "$dir/setup.sh"; fi
virtlogd -p "$dir/virtlogd.pid" &
libvirtd -f "$dir/libvirtd.conf" --listen -p "$dir/libvirtd.pid" &
wait
`;

async function run(cmd: string, args: string[]): Promise<string> {
  return (await execa(cmd, args, { env: ENV, timeout: 30_000 })).stdout;
}

async function runOk(cmd: string, args: string[]): Promise<boolean> {
  return (await execa(cmd, args, { env: ENV, timeout: 30_000, reject: false })).exitCode === 0;
}

function checkName(what: string, s: string): string {
  if (!NAME_RE.test(s))
    throw new Error(`netns host: bad ${what} ${JSON.stringify(s)} (1..15 of A-Z a-z 0-9 _ . -)`);
  return s;
}

function octets(addr: string): number[] {
  const m = IPV4_RE.exec(addr);
  const o = m ? m.slice(1).map(Number) : [];
  if (o.length !== 4 || o.some((x) => x > 255)) throw new Error(`netns host: bad IPv4 address ${addr}`);
  return o;
}

const toInt = (addr: string) => octets(addr).reduce((n, x) => n * 256 + x, 0);

/**
 * addrInUse says whether IPv4 `addr` falls in a network this machine (its own network namespace) has: inside
 * the prefix of one of its addresses or of a route other than the default one. Given to a namespace, or to a
 * guest behind a bridge port here, such an address would be answered (ARP) or routed by the machine itself.
 */
export async function addrInUse(addr: string): Promise<boolean> {
  const a = toInt(addr);
  const addrs = (await run("ip", ["-o", "-4", "addr", "show"])).matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/g);
  const routes = (await run("ip", ["-4", "route", "show", "table", "all"])).matchAll(
    /^(?:\S+ )?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?\s/gm,
  );
  for (const m of [...addrs, ...routes]) {
    const bits = Number(m[2] ?? 32);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if ((toInt(m[1]!) & mask) >>> 0 === (a & mask) >>> 0) return true;
  }
  return false;
}

/**
 * defaultSubnet picks the /30 of host `index` in 10.213.0.0/16: spread by the pid, so that test processes
 * running side by side differ, and the next candidate while the machine already has that network.
 */
async function defaultSubnet(index: number): Promise<string> {
  for (let k = 0; k < 16; k++) {
    const q = (((process.pid % 2048) * 8 + index + 997 * k) % 16384) * 4;
    const base = `10.213.${q >> 8}.${q & 255}`;
    if (
      !(await addrInUse(`10.213.${q >> 8}.${(q & 255) + 1}`)) &&
      !(await addrInUse(`10.213.${q >> 8}.${(q & 255) + 2}`))
    )
      return base;
  }
  throw new Error("netns host: no free /30 found in 10.213.0.0/16; pass a subnet");
}

/**
 * writeSshFiles makes the host's sshd config and keys (host key, the test's client key authorized for root)
 * and, for the client side, an ssh wrapper with its own config: the host key pinned in a known_hosts of the
 * host's directory, so nothing is written to root's ~/.ssh. libvirt runs the wrapper as its ssh (`command=`).
 */
async function writeSshFiles(dir: string, addr: string): Promise<void> {
  for (const k of ["host_key", "client_key"])
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `rfbt-nh ${k}`, "-f", join(dir, k)]);
  const pub = (k: string) => readFileSync(join(dir, `${k}.pub`), "utf8").trim();
  writeFileSync(join(dir, "authorized_keys"), `${pub("client_key")}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "known_hosts"), `${addr} ${pub("host_key").split(" ").slice(0, 2).join(" ")}\n`);
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress ${addr}`,
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      `PidFile ${dir}/sshd.pid`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "ssh_config"),
    [
      "Host *",
      `  UserKnownHostsFile ${dir}/known_hosts`,
      "  StrictHostKeyChecking yes",
      `  IdentityFile ${dir}/client_key`,
      "  IdentitiesOnly yes",
      "  BatchMode yes",
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "ssh"), `#!/bin/sh\nexec ssh -F ${dir}/ssh_config "$@"\n`, { mode: 0o755 });
}

/** startNetnsHost makes one host (see the module comment) and waits until its libvirtd answers on TCP. */
export async function startNetnsHost(opts: NetnsHostOptions): Promise<NetnsHost> {
  const t0 = Date.now();
  const i = opts.index;
  if (!Number.isInteger(i) || i < 1 || i > 999) throw new Error(`netns host: index ${i} is not 1..999`);
  const pid = process.pid;
  const name = checkName("name", `rfbt-nh${i}-${pid}`);
  const netns = name;
  const bridge = checkName("bridge", opts.bridge ?? "br-rf");
  const trunkPort = "trunk0";
  const trunkBridge = checkName("trunk bridge", opts.trunkBridge ?? `rft${i}-${pid}`);
  const rootVxlan = checkName("vxlan", `rfx${i}-${pid}`);
  const rootVeth = checkName("veth", `rfv${i}-${pid}`);
  const vni = opts.vni ?? (((pid % 1_000_000) * 10 + i) % 0xffffff) + 1;
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw new Error(`netns host: bad VNI ${vni}`);
  const o = octets(opts.subnet ?? (await defaultSubnet(i)));
  if (o[3]! % 4 !== 0) throw new Error(`netns host: subnet ${o.join(".")} does not start a /30`);
  const rootAddr = `${o[0]}.${o[1]}.${o[2]}.${o[3]! + 1}`;
  const addr = `${o[0]}.${o[1]}.${o[2]}.${o[3]! + 2}`;
  for (const a of [rootAddr, addr])
    if (await addrInUse(a))
      throw new Error(`netns host: ${a} is in a network this machine already has; pass another subnet`);
  if (opts.guestDir !== undefined && !existsSync(opts.guestDir))
    throw new Error(`netns host: guest directory ${opts.guestDir} does not exist`);
  if (opts.guestDir !== undefined && !/^\/[A-Za-z0-9_./-]*$/.test(opts.guestDir))
    throw new Error(`netns host: guest directory ${opts.guestDir} must be an absolute plain path`);

  const dir = join(NETNS_HOSTS_ROOT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "log"), { recursive: true, mode: 0o755 });
  writeFileSync(
    join(dir, "libvirtd.conf"),
    [
      "listen_tcp = 1",
      "listen_tls = 0",
      'auth_tcp = "none"',
      `listen_addr = "${addr}"`,
      `log_outputs = "3:file:${dir}/log/libvirtd.log"`,
      "",
    ].join("\n"),
  );

  if (opts.ssh) await writeSshFiles(dir, addr);
  if (opts.setup) writeFileSync(join(dir, "setup.sh"), `${opts.setup(dir).join("\n")}\n`);
  const partial = { name, netns, dir, rootVeth, rootVxlan, trunkBridge };
  try {
    await run("ip", ["netns", "add", netns]);
    await run("ip", [
      "link",
      "add",
      rootVeth,
      "mtu",
      "1600",
      "type",
      "veth",
      "peer",
      "name",
      "up0",
      "mtu",
      "1600",
      "netns",
      netns,
    ]);
    await run("ip", ["addr", "add", `${rootAddr}/30`, "dev", rootVeth]);
    await run("ip", ["link", "set", rootVeth, "up"]);
    await run("ip", ["-n", netns, "link", "set", "lo", "up"]);
    await run("ip", ["-n", netns, "addr", "add", `${addr}/30`, "dev", "up0"]);
    await run("ip", ["-n", netns, "link", "set", "up0", "up"]);
    const vx = (remote: string, local: string) => [
      "type",
      "vxlan",
      "id",
      String(vni),
      "remote",
      remote,
      "local",
      local,
      "dstport",
      "4789",
    ];
    await run("ip", ["-n", netns, "link", "add", trunkPort, "mtu", "1500", ...vx(rootAddr, addr)]);
    await run("ip", ["-n", netns, "link", "set", trunkPort, "up"]);
    await run("ip", ["link", "add", rootVxlan, "mtu", "1500", ...vx(addr, rootAddr)]);
    await run("ip", ["link", "set", rootVxlan, "up"]);
    await run("ovs-vsctl", [
      "--timeout=20",
      "add-br",
      trunkBridge,
      "--",
      "set",
      "bridge",
      trunkBridge,
      "datapath_type=netdev",
      "fail_mode=standalone",
      "--",
      "add-port",
      trunkBridge,
      rootVxlan,
    ]);
  } catch (e) {
    await removeOutside(partial);
    throw e;
  }

  const daemon = spawn(
    "ip",
    ["netns", "exec", netns, "unshare", "-m", "--propagation", "private", "tini", "-s", "--"].concat([
      "sh",
      "-c",
      HOST_SCRIPT,
      "sh",
      dir,
      bridge,
      trunkPort,
      opts.guestDir ?? "",
    ]),
    { stdio: ["ignore", "ignore", "pipe"], env: ENV },
  );
  let stderr = "";
  daemon.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const uri = `qemu+tcp://${addr}/system`;
  const testUri = `test+tcp://${addr}/default`;
  const sshUri = opts.ssh ? `qemu+ssh://root@${addr}/system?command=${join(dir, "ssh")}` : undefined;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let up = false;
  while (!up && Date.now() < deadline && daemon.exitCode === null) {
    // With ssh: sshd starts before libvirtd, so once libvirtd answers on TCP the ssh path should too.
    up = true;
    for (const u of sshUri !== undefined ? [uri, sshUri] : [uri])
      up &&=
        (await execa("virsh", ["-c", u, "uri"], { env: ENV, timeout: 10_000, reject: false })).exitCode === 0;
    if (!up) await sleep(50);
  }
  const host: NetnsHost = {
    ...partial,
    addr,
    rootAddr,
    uri,
    testUri,
    ...(sshUri !== undefined ? { sshUri } : {}),
    bridge,
    trunkPort,
    vni,
    storageDir: `${HOST_STATE_DIR}/disks`,
    consoleDir: `${HOST_STATE_DIR}/console`,
    ...(opts.guestDir !== undefined ? { guestDir: `${HOST_STATE_DIR}/guest` } : {}),
    pid: daemon.pid ?? -1,
    mntNs: nsOf(daemon.pid ?? -1, "mnt") ?? "",
    netNs: nsOf(daemon.pid ?? -1, "net") ?? "",
    startMs: Date.now() - t0,
    daemon,
  };
  if (!up) {
    await stopNetnsHost(host);
    throw new Error(
      `netns host ${name}: libvirtd did not answer on ${uri}${sshUri ? " and over ssh" : ""} (${dir}/log): ${stderr.trim()}`,
    );
  }
  return host;
}

const HOST_NAME_RE = /^rfbt-nh(\d+)-(\d+)$/;

/**
 * sweepStaleNetnsHosts removes the hosts of test processes that are gone (killed before they could stop
 * them): for each namespace named like a host whose pid is dead, it ends the processes in it (and in their
 * mount namespaces), deletes it, its root-side links, its trunk bridge and its directory. Returns their names.
 */
export async function sweepStaleNetnsHosts(): Promise<string[]> {
  const swept: string[] = [];
  for (const line of (await run("ip", ["netns", "list"])).split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = HOST_NAME_RE.exec(name);
    if (!m || alive(Number(m[2]))) continue;
    const [i, pid] = [m[1]!, m[2]!];
    let netNs = "";
    try {
      netNs = `net:[${statSync(join("/run/netns", name)).ino}]`;
    } catch {
      // not a namespace file any more
    }
    const inNet = netNs ? pidsInNs(netNs, -1, "net") : [];
    const mnts = new Set(inNet.map((p) => nsOf(p, "mnt")).filter((x): x is string => x !== undefined));
    mnts.delete(nsOf(process.pid, "mnt") ?? "");
    const victims = new Set([...inNet, ...[...mnts].flatMap((ns) => pidsInNs(ns, -1, "mnt"))]);
    for (const p of victims) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await removeOutside({
      netns: name,
      rootVeth: `rfv${i}-${pid}`,
      rootVxlan: `rfx${i}-${pid}`,
      trunkBridge: `rft${i}-${pid}`,
      dir: join(NETNS_HOSTS_ROOT, name),
    });
    swept.push(name);
  }
  return swept;
}

/**
 * startNetnsHosts starts hosts 1..n in parallel with the same options, after sweeping the hosts of dead test
 * processes; on any failure none is left.
 */
export async function startNetnsHosts(
  n: number,
  opts: Omit<NetnsHostOptions, "index" | "subnet" | "vni" | "trunkBridge"> = {},
): Promise<NetnsHost[]> {
  await sweepStaleNetnsHosts();
  const started = await Promise.allSettled(
    Array.from({ length: n }, (_, k) => startNetnsHost({ ...opts, index: k + 1 })),
  );
  const ok = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const bad = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (bad) {
    await stopNetnsHosts(ok);
    throw bad.reason;
  }
  return ok;
}

/** hostExec runs `argv` inside the host's namespaces (mount and network) and returns its stdout. */
export async function hostExec(
  host: NetnsHost,
  argv: readonly string[],
  timeoutMs = 30_000,
): Promise<string> {
  return (
    await execa("nsenter", ["-t", String(host.pid), "-m", "-n", "--", ...argv], {
      env: ENV,
      timeout: timeoutMs,
    })
  ).stdout;
}

/** hostReadFile returns a file's text as the host sees it, or "" when it is not there. */
export async function hostReadFile(host: NetnsHost, path: string): Promise<string> {
  const r = await execa("nsenter", ["-t", String(host.pid), "-m", "--", "cat", "--", path], {
    env: ENV,
    timeout: 10_000,
    reject: false,
    encoding: "latin1",
  });
  return r.exitCode === 0 ? r.stdout : "";
}

async function removeOutside(h: Pick<NetnsHost, "netns" | "rootVeth" | "rootVxlan" | "trunkBridge" | "dir">) {
  await runOk("ovs-vsctl", ["--timeout=20", "--if-exists", "del-br", h.trunkBridge]);
  await runOk("ip", ["link", "del", h.rootVxlan]);
  if ((await run("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === h.netns))
    await runOk("ip", ["netns", "del", h.netns]);
  // The veth goes with the namespace, once the kernel has let go of it.
  for (let k = 0; k < 50 && (await runOk("ip", ["link", "show", "dev", h.rootVeth])); k++) await sleep(100);
  await runOk("ip", ["link", "del", h.rootVeth]);
  rmSync(h.dir, { recursive: true, force: true });
}

/**
 * stopNetnsHost destroys the host's running domains, ends its daemons (SIGTERM, then SIGKILL after 5 s) while
 * tini still reaps them, then tini, and removes the namespace, the root-side links, the trunk bridge and the
 * host's directory.
 */
export async function stopNetnsHost(host: NetnsHost): Promise<void> {
  const list = await execa("virsh", ["-c", host.uri, "list", "--name"], {
    env: ENV,
    timeout: 10_000,
    reject: false,
  });
  for (const vm of list.exitCode === 0
    ? list.stdout
        .split("\n")
        .map((s) => s.trim())
        .filter(Boolean)
    : [])
    await execa("virsh", ["-c", host.uri, "destroy", vm], { env: ENV, timeout: 30_000, reject: false });
  const inHost = () =>
    [
      ...new Set([
        ...(host.mntNs ? pidsInNs(host.mntNs, host.pid, "mnt") : []),
        ...(host.netNs ? pidsInNs(host.netNs, host.pid, "net") : []),
      ]),
    ].filter(alive);
  const signal = (pids: number[], sig: NodeJS.Signals) => {
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        // already gone
      }
    }
  };
  signal(inHost(), "SIGTERM");
  for (let k = 0; k < 50 && inHost().length > 0; k++) await sleep(100);
  signal(inHost(), "SIGKILL");
  for (let k = 0; k < 20 && inHost().length > 0; k++) await sleep(100);
  // With its children gone, the shell's `wait` returns and tini exits with it.
  if (!(await waitExit(host.daemon, 3000))) {
    host.daemon.kill("SIGKILL");
    await waitExit(host.daemon, 2000);
  }
  await removeOutside(host);
}

/**
 * restartNetnsLibvirtd starts the host's libvirtd again (after it was killed), under a `tini -s` of its own in
 * the host's namespaces, and waits until it answers on TCP. The new tini is a child of the test process;
 * stopNetnsHost ends it with everything else in the namespaces.
 */
export async function restartNetnsLibvirtd(host: NetnsHost, timeoutMs = 60_000): Promise<void> {
  const child = spawn(
    "nsenter",
    ["-t", String(host.pid), "-m", "-n", "--", "tini", "-s", "--", "libvirtd"].concat([
      "-f",
      join(host.dir, "libvirtd.conf"),
      "--listen",
      "-p",
      join(host.dir, "libvirtd.pid"),
    ]),
    { stdio: "ignore", env: ENV },
  );
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null) {
    if (
      (await execa("virsh", ["-c", host.uri, "uri"], { env: ENV, timeout: 10_000, reject: false }))
        .exitCode === 0
    )
      return;
    await sleep(100);
  }
  throw new Error(`netns host ${host.name}: libvirtd did not answer on ${host.uri} after its restart`);
}

/** libvirtdPid is the pid of the host's libvirtd, from its pid file. */
export function libvirtdPid(host: NetnsHost): number {
  return Number(readFileSync(join(host.dir, "libvirtd.pid"), "utf8").trim());
}

/** stopNetnsHosts stops several hosts in parallel. */
export async function stopNetnsHosts(hosts: readonly NetnsHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => stopNetnsHost(h)));
}

/** netnsHostLeftovers lists what of `host` still exists: processes, namespace, links, bridge, directory. */
export async function netnsHostLeftovers(host: NetnsHost): Promise<string[]> {
  const out: string[] = [];
  const pids = new Set([
    ...(host.mntNs ? pidsInNs(host.mntNs, -1, "mnt") : []),
    ...(host.netNs ? pidsInNs(host.netNs, -1, "net") : []),
  ]);
  for (const p of pids) if (alive(p)) out.push(`process ${p}`);
  if ((await run("ip", ["netns", "list"])).split("\n").some((l) => l.split(" ")[0] === host.netns))
    out.push(`netns ${host.netns}`);
  for (const l of [host.rootVeth, host.rootVxlan])
    if (await runOk("ip", ["link", "show", "dev", l])) out.push(`link ${l}`);
  if (await runOk("ovs-vsctl", ["br-exists", host.trunkBridge])) out.push(`ovs bridge ${host.trunkBridge}`);
  if (existsSync(host.dir)) out.push(`directory ${host.dir}`);
  return out;
}

/** NetnsHostConfig is the `hosts[]` entry of an rfboot config for one netns host (config/schema.ts). */
export interface NetnsHostConfig {
  name: string;
  uri: string;
  images: "path" | "pool";
  dataPlane: { trunkBridge: string; bridge: string };
}

/**
 * netnsHostConfig gives the host's entry for an rfboot config: its qemu+tcp URI, its trunk bridge and data
 * bridge, and `images: path` when the guest files are bound at rfboot's default guest paths inside the host
 * (else `pool`: the kernel and initrd must be uploaded into its pool).
 */
export function netnsHostConfig(host: NetnsHost, name = host.name): NetnsHostConfig {
  return {
    name,
    uri: host.uri,
    images: host.guestDir === undefined ? "pool" : "path",
    dataPlane: { trunkBridge: host.trunkBridge, bridge: host.bridge },
  };
}
