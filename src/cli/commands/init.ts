/**
 * `rfboot init`: writes a new config. Interactive (what RouteFlow users once did with a dialog script):
 * the target file is checked first, so no answer is lost to a path that cannot be written; it may start from
 * a RouteFlow mapping CSV; then one question at a time with a default in brackets, each answer checked at
 * once and asked again with the reason when it is wrong: each VM, then OpenFlow, MongoDB, hosts, bridges,
 * the leave policy and readiness; a summary, and nothing is written without a yes. The file is validated
 * before it is written and never overwrites an existing one without --force. `--yes` takes every answer
 * from flags (defaults for the rest).
 */
import { existsSync } from "node:fs";
import { access, constants, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import { ConfigError, UsageError, describeConfigError, errorMessage } from "../../common/errors.js";
import {
  DEV_RE,
  DPID_FORMS,
  INIT_HOST_URIS,
  hostProblem,
  importRouteflowCsv,
  libvirtUriProblem,
  mongoUriProblem,
  regexProblem,
  VM_ID_FORMS,
  VM_NAME_RE,
  dpidKey,
  initConfigYaml,
  parseDpidText,
  parseVmId,
  pathProblem,
  templateVmId,
  vmIdProblemText,
  vmIdToMac,
  type InitBoot,
  type InitSettings,
  type InitVm,
} from "../../provisioner/index.js";
import {
  ARCHES,
  HYPERVISOR_NAMES,
  IFNAMSIZ_MAX,
  MAX_DATA_PORTS,
  type Arch,
  type HypervisorName,
} from "../../xmlgen/index.js";

/** Check is one answer's validator: the parsed value, or the reason it was refused. */
type Check<T> = (answer: string) => { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T) => ({ ok: true as const, value });
const no = (reason: string) => ({ ok: false as const, reason });

function intCheck(min: number, max: number, what: string): Check<number> {
  return (a) => {
    if (!/^[0-9]+$/.test(a)) return no(`${what} must be a whole number from ${min} to ${max}`);
    const n = Number(a);
    return n >= min && n <= max ? ok(n) : no(`${what} must be from ${min} to ${max}`);
  };
}

function oneOf<T extends string>(options: readonly T[]): Check<T> {
  return (a) =>
    (options as readonly string[]).includes(a) ? ok(a as T) : no(`answer one of: ${options.join(", ")}`);
}

const pathCheck: Check<string> = (a) => {
  const p = pathProblem(a);
  return p ? no(`path ${p}`) : ok(a);
};

/** missingNote says, without refusing it, that a path is not on this machine (yet): a host may have it. */
function missingNote(io: WizardIO, path: string | undefined): void {
  if (path !== undefined && !existsSync(path)) {
    io.say(`  (note: ${path} does not exist on this machine yet; rfboot plan will say so too)`);
  }
}

/** endpointCheck reads `host:port` (`[::1]:6653` for IPv6). */
const endpointCheck: Check<{ host: string; port: number }> = (a) => {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(a);
  if (!m) return no("write host:port, like 127.0.0.1:6653 ([::1]:6653 for IPv6)");
  const host = m[1] ?? m[2]!;
  const hp = hostProblem(host);
  if (hp) return no(`host ${hp}`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return no("the port must be from 1 to 65535");
  return ok({ host, port });
};

const textCheck =
  (problem: (s: string) => string | undefined, what: string): Check<string> =>
  (a) => {
    const p = problem(a);
    return p ? no(`${what} ${p}`) : ok(a);
  };

const optionalPathCheck: Check<string | undefined> = (a) =>
  a === "" || a === "-" ? ok(undefined) : pathCheck(a);

/** The answers' validators, shared by the wizard and by --yes flags. */
export const CHECKS = {
  hypervisor: oneOf(HYPERVISOR_NAMES),
  arch: oneOf(ARCHES),
  vcpus: intCheck(1, 4096, "vCPUs"),
  memory: intCheck(16, 16 * 1024 * 1024, "memory (MiB)"),
  dataPorts: intCheck(0, MAX_DATA_PORTS, "data ports"),
  name: ((a) => {
    if (!VM_NAME_RE.test(a))
      return no("a VM name is 1..64 characters of A-Z a-z 0-9 _ . - and does not start with . or -");
    return ok(a);
  }) as Check<string>,
  vmId: ((a) => {
    const r = parseVmId(/^[0-9]+$/.test(a) ? Number(a) : a);
    return r.ok ? ok(r.value) : no(`vm_id ${vmIdProblemText(r.problem)}`);
  }) as Check<bigint>,
  dpid: ((a) => {
    const d = parseDpidText(a);
    return d === undefined ? no(`a datapath id is ${DPID_FORMS}`) : ok(d);
  }) as Check<bigint>,
  path: pathCheck,
  optionalPath: optionalPathCheck,
  mode: oneOf(["listen", "relay"] as const),
  endpoint: endpointCheck,
  mongoUri: textCheck(mongoUriProblem, "the MongoDB URI"),
  libvirtUri: textCheck(libvirtUriProblem, "the libvirt URI"),
  bridge: ((a) =>
    DEV_RE.test(a)
      ? ok(a)
      : no("a bridge name is 1..15 characters of A-Z a-z 0-9 _ . - (Linux IFNAMSIZ)")) as Check<string>,
  hostName: ((a) =>
    VM_NAME_RE.test(a)
      ? ok(a)
      : no(
          "a host name is 1..64 characters of A-Z a-z 0-9 _ . - and does not start with . or -",
        )) as Check<string>,
  leave: oneOf(["keep", "shutdown", "destroy", "suspend"] as const),
  marker: ((a) => {
    if (a === "-") return ok(null);
    const p = regexProblem(a);
    return p ? no(`the marker ${p}`) : ok(a);
  }) as Check<string | null>,
  timeout: intCheck(1, 86_400, "the readiness timeout (seconds)"),
  yesNo: ((a) =>
    /^(y|yes)$/i.test(a)
      ? ok(true)
      : /^(n|no)$/i.test(a)
        ? ok(false)
        : no("answer y or n")) as Check<boolean>,
} as const;

/** Defaults for the `index`-th VM (0-based): rftest's names and vm_ids for the first six, dpids 5, 6, ... */
export function vmDefaults(index: number, dpid: bigint): { name: string; vmId: bigint } {
  if (index < 6) {
    const letter = "ABCDEF"[index]!;
    const b = 0xa0n + BigInt(index) * 0x10n;
    let vmId = 0x02n;
    for (let i = 0; i < 5; i++) vmId = (vmId << 8n) | b;
    return { name: `rfvm${letter}`, vmId };
  }
  return { name: `rfvm${index + 1}`, vmId: templateVmId(dpid) };
}

/** Asker is how the wizard gets one answer: undefined when the input ended. */
export type Asker = (prompt: string) => Promise<string | undefined>;

/** WizardIO connects the wizard to a terminal (or a script in tests). */
export interface WizardIO {
  readonly ask: Asker;
  readonly say: (line: string) => void;
}

/** ask asks until `check` accepts the answer (empty = the default), printing the reason each time. */
async function askValid<T>(
  io: WizardIO,
  prompt: string,
  def: string,
  check: Check<T>,
  prepare?: (answer: string) => Promise<void>,
): Promise<T> {
  for (;;) {
    const raw = await io.ask(`${prompt}${def !== "" ? ` [${def}]` : ""}: `);
    if (raw === undefined)
      throw new UsageError(
        "the wizard was cancelled or its input ended; nothing written (use --yes with flags in scripts)",
      );
    const answer = raw.trim() === "" ? def : raw.trim();
    // prepare does the asynchronous part of a check (reading a file) before the synchronous verdict.
    if (prepare) await prepare(answer);
    const r = check(answer);
    if (r.ok) return r.value;
    io.say(`  ! ${r.reason}; try again`);
  }
}

/** bootChoices lists the boot methods the wizard offers for a hypervisor. */
function bootChoices(h: HypervisorName): readonly ("kernel" | "image" | "rootfs")[] {
  if (h === "lxc") return ["rootfs"];
  if (h === "xen-pv") return ["kernel"];
  return ["kernel", "image"];
}

/** askVm runs the questions for one VM; `prev` supplies the defaults after the first VM. */
async function askVm(
  io: WizardIO,
  index: number,
  taken: { names: Set<string>; vmIds: Set<bigint>; dpids: Set<bigint> },
  prev?: InitVm,
  fixed?: CsvVm,
): Promise<InitVm> {
  io.say(fixed ? `VM ${index + 1}: ${fixed.name} (from the CSV)` : `VM ${index + 1}:`);
  const hypervisor = await askValid(
    io,
    `  Hypervisor (${HYPERVISOR_NAMES.join(", ")})`,
    prev?.hypervisor ?? "qemu",
    CHECKS.hypervisor,
  );
  const nextDpid = prev ? prev.dpid + 1n : 5n;
  const d = vmDefaults(index, nextDpid);
  if (fixed) {
    const hw = await askHardware(io, hypervisor, fixed.name, prev);
    return { hypervisor, ...fixed, dataPorts: fixed.ports.length, ...hw };
  }
  const name = await askValid(io, "  VM name", d.name, (a) => {
    const r = CHECKS.name(a);
    if (!r.ok) return r;
    if (taken.names.has(r.value)) return no(`${r.value} is already the name of another VM`);
    return r;
  });
  const vmId = await askValid(
    io,
    `  vm_id: eth0 MAC of the VM (RouteFlow's id)`,
    vmIdToMac(index < 6 ? d.vmId : templateVmId(nextDpid)),
    (a) => {
      const r = CHECKS.vmId(a);
      if (!r.ok) return no(`${r.reason.replace(/^vm_id /, "")} (${VM_ID_FORMS})`);
      if (taken.vmIds.has(r.value)) return no(`${vmIdToMac(r.value)} is already another VM's vm_id`);
      return r;
    },
  );
  const dpid = await askValid(
    io,
    "  Datapath id of its switch (hex like 0x5, or dec:N)",
    dpidKey(nextDpid),
    (a) => {
      const r = CHECKS.dpid(a);
      if (!r.ok) return r;
      if (taken.dpids.has(r.value)) return no(`datapath ${dpidKey(r.value)} already has a VM`);
      return r;
    },
  );
  const dataPorts = await askValid(
    io,
    "  Data ports (eth1..N <-> switch ports 1..N)",
    String(prev?.dataPorts ?? 2),
    (a) => {
      const r = CHECKS.dataPorts(a);
      if (r.ok && r.value > 0 && `${name}.${r.value}`.length > IFNAMSIZ_MAX) {
        io.say(
          `  (note: ${name}.${r.value} is longer than ${IFNAMSIZ_MAX} characters; host devices will be hashed names rf<hex>.N)`,
        );
      }
      return r;
    },
  );
  return { hypervisor, name, vmId, dpid, dataPorts, ...(await askHardware(io, hypervisor, name, prev)) };
}

/** CsvVm is a VM's identity taken from a RouteFlow CSV: the wizard asks only for its hardware. */
type CsvVm = Pick<InitVm, "name" | "vmId" | "dpid"> & { readonly ports: NonNullable<InitVm["ports"]> };

/** askHardware asks a VM's architecture, size and boot method. */
async function askHardware(
  io: WizardIO,
  hypervisor: HypervisorName,
  name: string,
  prev: InitVm | undefined,
): Promise<Pick<InitVm, "arch" | "vcpus" | "memoryMiB" | "boot">> {
  const arch = await askValid<Arch>(
    io,
    `  Architecture (${ARCHES.join(", ")})`,
    prev?.arch ?? "x86_64",
    CHECKS.arch,
  );
  const vcpus = await askValid(io, "  vCPUs", String(prev?.vcpus ?? 1), CHECKS.vcpus);
  const memoryMiB = await askValid(io, "  Memory (MiB)", String(prev?.memoryMiB ?? 128), CHECKS.memory);
  const choices = bootChoices(hypervisor);
  const prevKind = prev && choices.includes(prev.boot.type) ? prev.boot.type : choices[0]!;
  const kind =
    choices.length === 1
      ? choices[0]!
      : await askValid(io, `  Boot from (${choices.join(", ")})`, prevKind, oneOf(choices));
  let boot: InitBoot;
  const pb = prev?.boot;
  if (kind === "kernel") {
    const kernel = await askValid(
      io,
      "  Kernel",
      pb?.type === "kernel" ? pb.kernel : "/var/lib/rfboot/guest/vmlinuz",
      CHECKS.path,
    );
    const initrd = await askValid(
      io,
      "  Initrd (- for none)",
      pb?.type === "kernel" ? (pb.initrd ?? "-") : "/var/lib/rfboot/guest/initrd.gz",
      CHECKS.optionalPath,
    );
    missingNote(io, kernel);
    missingNote(io, initrd);
    boot = { type: "kernel", kernel, ...(initrd ? { initrd } : {}) };
  } else if (kind === "image") {
    const image = await askValid(
      io,
      "  Disk image (base; each VM gets a qcow2 overlay)",
      pb?.type === "image" ? pb.image : "/var/lib/rfboot/images/rfvm.qcow2",
      CHECKS.path,
    );
    missingNote(io, image);
    boot = { type: "image", image, format: /\.qcow2$/i.test(image) ? "qcow2" : "raw" };
  } else {
    const rootfs = await askValid(
      io,
      "  Root filesystem directory",
      pb?.type === "rootfs" ? pb.rootfs : `/var/lib/rfboot/rootfs/${name}`,
      CHECKS.path,
    );
    missingNote(io, rootfs.includes("{") ? undefined : rootfs);
    boot = { type: "rootfs", rootfs, init: "/sbin/init" };
  }
  return { arch, vcpus, memoryMiB, boot };
}

/**
 * runWizard asks for one or more VMs and returns them. With `csv` (a RouteFlow mapping CSV already read),
 * the VMs are the CSV's datapaths and only their hardware is asked.
 */
export async function runWizard(io: WizardIO, csv?: readonly CsvVm[]): Promise<InitVm[]> {
  const vms: InitVm[] = [];
  if (csv) {
    for (const [i, fixed] of csv.entries()) {
      const taken = { names: new Set<string>(), vmIds: new Set<bigint>(), dpids: new Set<bigint>() };
      vms.push(await askVm(io, i, taken, vms[vms.length - 1], fixed));
    }
    return vms;
  }
  const taken = { names: new Set<string>(), vmIds: new Set<bigint>(), dpids: new Set<bigint>() };
  for (;;) {
    const vm = await askVm(io, vms.length, taken, vms[vms.length - 1]);
    vms.push(vm);
    taken.names.add(vm.name);
    taken.vmIds.add(vm.vmId);
    taken.dpids.add(vm.dpid);
    if (!(await askValid(io, "Add another VM? (y/n)", "n", CHECKS.yesNo))) return vms;
  }
}

/** HostAnswer is one libvirt host of the config being written. */
type HostAnswer = { readonly name: string; readonly uri: string };

/** askSettings asks the config-wide questions: OpenFlow, MongoDB, hosts, bridges, leave policy, readiness. */
export async function askSettings(io: WizardIO, vms: readonly InitVm[]): Promise<InitSettings> {
  io.say("RouteFlow and this machine:");
  const mode = await askValid(
    io,
    "  OpenFlow mode: listen (beside rfproxy, switches list both controllers) or relay (switches connect to rfboot, which forwards to rfproxy)",
    "listen",
    CHECKS.mode,
  );
  const listen = await askValid(
    io,
    "  Listen for switches on (host:port)",
    "127.0.0.1:6653",
    CHECKS.endpoint,
  );
  let upstream: { host: string; port: number } | undefined;
  if (mode === "relay") {
    upstream = await askValid(io, "  Upstream controller, rfproxy (host:port)", "127.0.0.1:6633", (a) => {
      const r = CHECKS.endpoint(a);
      if (
        r.ok &&
        r.value.port === listen.port &&
        (r.value.host === listen.host || ["0.0.0.0", "::"].includes(listen.host))
      ) {
        return no("that is rfboot's own listen address (a loop); give rfproxy's");
      }
      return r;
    });
  }
  const mongoUri = await askValid(
    io,
    "  MongoDB URI (RouteFlow's database)",
    "mongodb://127.0.0.1:27017",
    CHECKS.mongoUri,
  );
  const hosts: HostAnswer[] = [];
  for (const hv of [...new Set(vms.map((v) => v.hypervisor))]) {
    const def = INIT_HOST_URIS[hv];
    if (hosts.some((h) => h.uri === def)) continue;
    const uri = await askValid(io, `  libvirt URI for ${hv} VMs`, def, (a) => {
      const r = CHECKS.libvirtUri(a);
      if (r.ok && hosts.some((h) => h.uri === r.value)) return no(`${a} is already a host`);
      return r;
    });
    if (!hosts.some((h) => h.uri === uri))
      hosts.push({ name: uniqueHostName(uri.split(/[:+]/)[0]!, hosts), uri });
  }
  while (await askValid(io, "  Add a remote libvirt host? (y/n)", "n", CHECKS.yesNo)) {
    const name = await askValid(io, "    Host name", uniqueHostName("remote", hosts), (a) => {
      const r = CHECKS.hostName(a);
      return r.ok && hosts.some((h) => h.name === a) ? no(`${a} is already a host`) : r;
    });
    const uri = await askValid(io, "    Its libvirt URI", `qemu+ssh://root@${name}/system`, (a) => {
      const r = CHECKS.libvirtUri(a);
      return r.ok && hosts.some((h) => h.uri === a) ? no(`${a} is already a host`) : r;
    });
    hosts.push({ name, uri });
  }
  const managementBridge = await askValid(io, "  Management bridge for eth0", "rfbr0", CHECKS.bridge);
  const dataBridge = await askValid(
    io,
    "  Data bridge for eth1..N (RouteFlow's virtual switch)",
    "dp0",
    CHECKS.bridge,
  );
  const leave = await askValid(
    io,
    "  When a switch leaves, its VM (keep, shutdown, destroy, suspend)",
    "keep",
    CHECKS.leave,
  );
  const consoleMarker = await askValid(
    io,
    "  Ready when the console prints (a regex; - for no console check)",
    "RFBOOT-GUEST-BOOTED",
    CHECKS.marker,
  );
  const readinessTimeoutSeconds = await askValid(io, "  Readiness timeout (seconds)", "120", CHECKS.timeout);
  return {
    mode,
    listen,
    ...(upstream ? { upstream } : {}),
    mongoUri,
    hosts,
    managementBridge,
    dataBridge,
    leave,
    consoleMarker,
    readinessTimeoutSeconds,
  };
}

function uniqueHostName(base: string, hosts: readonly HostAnswer[]): string {
  if (!hosts.some((h) => h.name === base)) return base;
  for (let i = 2; ; i++) if (!hosts.some((h) => h.name === `${base}${i}`)) return `${base}${i}`;
}

/** summary renders what is about to be written, one line each. */
export function summary(out: string, vms: readonly InitVm[], s: InitSettings): string[] {
  const ep = (e: { host: string; port: number } | undefined) =>
    e ? (e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`) : "";
  return [
    `Summary (to ${out}):`,
    ...vms.map(
      (v) =>
        `  VM ${v.name}: datapath ${dpidKey(v.dpid)}, vm_id ${vmIdToMac(v.vmId)}, ${v.ports ? v.ports.length : v.dataPorts} data ports, ${v.hypervisor} ${v.arch}, ${v.vcpus} vCPU, ${v.memoryMiB} MiB, boot ${v.boot.type === "kernel" ? v.boot.kernel : v.boot.type === "image" ? v.boot.image : v.boot.rootfs}`,
    ),
    `  OpenFlow: ${s.mode ?? "listen"} on ${ep(s.listen)}${s.mode === "relay" ? `, forwarding to ${ep(s.upstream)}` : ""}`,
    `  MongoDB: ${s.mongoUri ?? "mongodb://127.0.0.1:27017"}`,
    `  Hosts: ${(s.hosts ?? []).map((h) => `${h.name} (${h.uri})`).join(", ")}`,
    `  Bridges: eth0 on ${s.managementBridge ?? "rfbr0"}, data NICs on ${s.dataBridge ?? "dp0"}`,
    `  When a switch leaves: ${s.leave ?? "keep"}; ready: ${s.consoleMarker === null ? "no console check" : `console prints /${s.consoleMarker ?? "RFBOOT-GUEST-BOOTED"}/`} within ${s.readinessTimeoutSeconds ?? 120} s`,
  ];
}

/**
 * targetProblem says why `path` cannot be written, before any question is asked: it exists (without
 * --force), it is a directory, its directory is missing or not writable. undefined: fine.
 */
export async function targetProblem(path: string, force: boolean): Promise<string | undefined> {
  if (path === "" || path.includes("\0")) return "not a file name";
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory())
    return `${path} is a directory; give a file name in it, like ${path.replace(/\/$/, "")}/rfboot.yaml`;
  if (st && !force) return `${path} exists; choose another file or pass --force to overwrite it`;
  const dir = dirname(resolve(path));
  const dst = await stat(dir).catch(() => undefined);
  if (!dst)
    return `directory ${dir} does not exist; create it first (mkdir -p ${dir}) or choose another place`;
  if (!dst.isDirectory()) return `${dir} is not a directory`;
  try {
    await access(dir, constants.W_OK);
  } catch {
    return `directory ${dir} is not writable by this user; choose another place or run as a user who may write there`;
  }
  return undefined;
}

/** readCsvVms reads a RouteFlow mapping CSV for the wizard; a ConfigError or UsageError says what is wrong. */
export async function readCsvVms(path: string): Promise<CsvVm[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : errorMessage(err)}`,
    );
  }
  const imp = importRouteflowCsv(text, path);
  return imp.datapaths.map((d) => ({ name: d.name, vmId: d.vmId, dpid: d.dpid, ports: d.ports }));
}

/** InitOptions are the flags of `rfboot init`. */
export interface InitOptions {
  readonly out?: string;
  readonly force?: boolean;
  readonly yes?: boolean;
  readonly hypervisor?: string;
  readonly name?: string;
  readonly vmId?: string;
  readonly arch?: string;
  readonly vcpus?: string;
  readonly memory?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly image?: string;
  readonly rootfs?: string;
  readonly dataPorts?: string;
  readonly dpid?: string;
  readonly csv?: string;
  readonly mode?: string;
  readonly listen?: string;
  readonly upstream?: string;
  readonly mongoUri?: string;
  readonly hostUri?: string;
  readonly remoteHost?: readonly string[];
  readonly managementBridge?: string;
  readonly dataBridge?: string;
  readonly leave?: string;
  readonly consoleMarker?: string;
  readonly readinessTimeout?: string;
}

/** settingsFromFlags builds the config-wide answers of `init --yes` from flags (defaults for the rest). */
export function settingsFromFlags(o: InitOptions, vms: readonly InitVm[]): InitSettings {
  const mode = flag(o.mode, "listen", CHECKS.mode, "mode");
  if (mode !== "relay" && o.upstream !== undefined) throw new UsageError("--upstream goes with --mode relay");
  const listen = flag(o.listen, "127.0.0.1:6653", CHECKS.endpoint, "listen");
  const upstream =
    mode === "relay" ? flag(o.upstream, "127.0.0.1:6633", CHECKS.endpoint, "upstream") : undefined;
  if (
    upstream &&
    upstream.port === listen.port &&
    (upstream.host === listen.host || ["0.0.0.0", "::"].includes(listen.host))
  ) {
    throw new UsageError(
      `--upstream ${o.upstream ?? ""}: that is rfboot's own listen address (a loop); give rfproxy's`,
    );
  }
  const hosts: HostAnswer[] = [];
  const hypervisors = [...new Set(vms.map((v) => v.hypervisor))];
  if (o.hostUri !== undefined && hypervisors.length > 1) {
    throw new UsageError("--host-uri is for a config whose VMs all use one hypervisor");
  }
  for (const hv of hypervisors) {
    const uri = flag(o.hostUri, INIT_HOST_URIS[hv], CHECKS.libvirtUri, "host-uri");
    if (!hosts.some((h) => h.uri === uri))
      hosts.push({ name: uniqueHostName(uri.split(/[:+]/)[0]!, hosts), uri });
  }
  for (const spec of o.remoteHost ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(spec);
    if (!m)
      throw new UsageError(
        `--remote-host ${JSON.stringify(spec)}: write NAME=URI, like rack2=qemu+ssh://root@rack2/system`,
      );
    const name = flag(m[1], "", CHECKS.hostName, "remote-host");
    const uri = flag(m[2], "", CHECKS.libvirtUri, "remote-host");
    if (hosts.some((h) => h.name === name || h.uri === uri)) {
      throw new UsageError(`--remote-host ${JSON.stringify(spec)}: that name or URI is already a host`);
    }
    hosts.push({ name, uri });
  }
  return {
    mode,
    listen,
    ...(upstream ? { upstream } : {}),
    mongoUri: flag(o.mongoUri, "mongodb://127.0.0.1:27017", CHECKS.mongoUri, "mongo-uri"),
    hosts,
    managementBridge: flag(o.managementBridge, "rfbr0", CHECKS.bridge, "management-bridge"),
    dataBridge: flag(o.dataBridge, "dp0", CHECKS.bridge, "data-bridge"),
    leave: flag(o.leave, "keep", CHECKS.leave, "leave"),
    consoleMarker: flag(o.consoleMarker, "RFBOOT-GUEST-BOOTED", CHECKS.marker, "console-marker"),
    readinessTimeoutSeconds: flag(o.readinessTimeout, "120", CHECKS.timeout, "readiness-timeout"),
  };
}

function flag<T>(value: string | undefined, def: string, check: Check<T>, name: string): T {
  const r = check(value ?? def);
  if (!r.ok) throw new UsageError(`--${name} ${JSON.stringify(value)}: ${r.reason}`);
  return r.value;
}

/** vmFromFlags builds the one VM of `init --yes` from flags, with the wizard's defaults for the rest. */
export function vmFromFlags(o: InitOptions): InitVm {
  const hypervisor = flag(o.hypervisor, "qemu", CHECKS.hypervisor, "hypervisor");
  const d = vmDefaults(0, 5n);
  const name = flag(o.name, d.name, CHECKS.name, "name");
  const vmId = flag(o.vmId, vmIdToMac(d.vmId), CHECKS.vmId, "vm-id");
  const dpid = flag(o.dpid, "0x5", CHECKS.dpid, "dpid");
  const dataPorts = flag(o.dataPorts, "2", CHECKS.dataPorts, "data-ports");
  const arch = flag(o.arch, "x86_64", CHECKS.arch, "arch");
  const vcpus = flag(o.vcpus, "1", CHECKS.vcpus, "vcpus");
  const memoryMiB = flag(o.memory, "128", CHECKS.memory, "memory");
  const given = [
    o.kernel !== undefined && "--kernel",
    o.image !== undefined && "--image",
    o.rootfs !== undefined && "--rootfs",
  ].filter(Boolean);
  if (given.length > 1) throw new UsageError(`give only one of ${given.join(", ")}`);
  if (o.initrd !== undefined && o.image !== undefined)
    throw new UsageError("--initrd goes with --kernel, not --image");
  let boot: InitBoot;
  if (hypervisor === "lxc" || o.rootfs !== undefined) {
    if (hypervisor !== "lxc") throw new UsageError("--rootfs is for --hypervisor lxc");
    if (o.kernel !== undefined || o.image !== undefined)
      throw new UsageError("lxc containers boot from --rootfs, not a kernel or image");
    boot = {
      type: "rootfs",
      rootfs: flag(o.rootfs, `/var/lib/rfboot/rootfs/${name}`, CHECKS.path, "rootfs"),
      init: "/sbin/init",
    };
  } else if (o.image !== undefined) {
    if (hypervisor === "xen-pv") throw new UsageError("--image is not offered for xen-pv; use --kernel");
    const image = flag(o.image, "", CHECKS.path, "image");
    boot = { type: "image", image, format: /\.qcow2$/i.test(image) ? "qcow2" : "raw" };
  } else {
    const kernel = flag(o.kernel, "/var/lib/rfboot/guest/vmlinuz", CHECKS.path, "kernel");
    const defInitrd = o.kernel === undefined ? "/var/lib/rfboot/guest/initrd.gz" : "-";
    const initrd = flag(o.initrd, defInitrd, CHECKS.optionalPath, "initrd");
    boot = { type: "kernel", kernel, ...(initrd ? { initrd } : {}) };
  }
  return { hypervisor, name, vmId, dpid, dataPorts, arch, vcpus, memoryMiB, boot };
}

/** terminalIO wires the wizard to a readline interface on `input`/`output` (works over a TTY and a pipe). */
export function terminalIO(input: Readable, output: Writable): WizardIO & { close(): void } {
  const rl = createInterface({ input, output, terminal: (output as { isTTY?: boolean }).isTTY === true });
  // Lines are queued, so answers typed (or piped) ahead of their question are not lost.
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  let closed = false;
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on("close", () => {
    closed = true;
    for (const w of waiting.splice(0)) w(undefined);
  });
  rl.on("SIGINT", () => {
    output.write("\n");
    rl.close();
  });
  // Over a pipe nothing echoes the answer: end the prompt's line so the transcript stays readable.
  const tty = (output as { isTTY?: boolean }).isTTY === true;
  const endLine = (line: string | undefined) => {
    if (!tty && line !== undefined) output.write("\n");
    return line;
  };
  return {
    ask: async (prompt) => {
      rl.setPrompt(prompt);
      rl.prompt();
      const queued = lines.shift();
      if (queued !== undefined) return endLine(queued);
      if (closed) return undefined;
      return endLine(await new Promise<string | undefined>((res) => waiting.push(res)));
    },
    say: (line) => output.write(`${line}\n`),
    close: () => rl.close(),
  };
}

async function writeConfig(path: string, yaml: string, force: boolean): Promise<void> {
  try {
    // 0600: a config may carry MongoDB credentials in mongo.uri.
    await writeFile(path, yaml, { flag: force ? "w" : "wx", mode: 0o600 });
  } catch (err) {
    // The target was checked before the questions; this is what changed since (or a race).
    const why = await targetProblem(path, force);
    throw new UsageError(`cannot write ${path}: ${why ?? errorMessage(err)} (nothing written)`, {
      cause: err,
    });
  }
}

/** askCsv asks for a RouteFlow mapping CSV to start from; re-asks, with the reason, one that cannot be read. */
async function askCsv(io: WizardIO): Promise<CsvVm[] | undefined> {
  let read: CsvVm[] | undefined;
  let problem: string | undefined;
  await askValid(
    io,
    "Start from a RouteFlow mapping CSV (rftestNconfig.csv; - for none)",
    "-",
    () => (problem === undefined ? ok(undefined) : no(problem)),
    async (a) => {
      problem = undefined;
      read = undefined;
      if (a === "-") return;
      try {
        read = await readCsvVms(a);
      } catch (err) {
        if (!(err instanceof ConfigError) && !(err instanceof UsageError)) throw err;
        problem = err instanceof ConfigError ? describeConfigError(err).replace(/\n\s*/g, "; ") : err.message;
      }
    },
  );
  return read;
}

/**
 * runInit does the whole command with the given streams; returns the file written, or undefined when the
 * user declined at the summary. The target file is checked first, so no answer is lost to a bad path.
 */
export async function runInit(
  o: InitOptions,
  input: Readable,
  output: Writable,
): Promise<string | undefined> {
  const force = o.force === true;
  const checkOut = async (path: string): Promise<string> => {
    const p = await targetProblem(path, force);
    if (p) throw new UsageError(`--out: ${p} (nothing asked, nothing written)`);
    return path;
  };
  let vms: InitVm[];
  let settings: InitSettings;
  let out: string;
  if (o.yes) {
    out = await checkOut(o.out ?? "rfboot.yaml");
    if (o.csv !== undefined) {
      const own = (["name", "vmId", "dpid", "dataPorts"] as const).filter((k) => o[k] !== undefined);
      if (own.length) {
        const flags = own.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
        throw new UsageError(
          `${flags.join(", ")}: with --csv, each VM's name, vm_id, dpid and ports come from the CSV`,
        );
      }
      const csv = await readCsvVms(o.csv);
      const hw = vmFromFlags(o);
      // One rootfs per container: without --rootfs, each VM's default path names it.
      vms = csv.map((c) => ({
        ...hw,
        ...c,
        dataPorts: c.ports.length,
        ...(hw.boot.type === "rootfs" && o.rootfs === undefined
          ? { boot: { ...hw.boot, rootfs: `/var/lib/rfboot/rootfs/${c.name}` } }
          : {}),
      }));
    } else vms = [vmFromFlags(o)];
    settings = settingsFromFlags(o, vms);
  } else {
    const io = terminalIO(input, output);
    try {
      io.say("rfboot init: a config for RouteFlow VMs booted on demand. Enter takes the [default].");
      if (o.out !== undefined) out = await checkOut(o.out);
      else {
        let problem: string | undefined;
        out = await askValid(
          io,
          "Write the config to",
          "rfboot.yaml",
          (a) => (problem === undefined ? ok(a) : no(problem)),
          async (a) => {
            problem = await targetProblem(a, force);
          },
        );
      }
      const csv = o.csv !== undefined ? await readCsvVms(o.csv) : await askCsv(io);
      if (csv) {
        const list = csv.map((c) => `${c.name} (datapath ${dpidKey(c.dpid)}, ${c.ports.length} ports)`);
        io.say(`The CSV has ${csv.length} VM${csv.length > 1 ? "s" : ""}: ${list.join(", ")}.`);
      }
      vms = await runWizard(io, csv);
      settings = await askSettings(io, vms);
      for (const line of summary(out, vms, settings)) io.say(line);
      if (!(await askValid(io, "Write it? (y/n)", "y", CHECKS.yesNo))) {
        io.say("nothing written");
        return undefined;
      }
    } finally {
      io.close();
    }
  }
  const { yaml } = initConfigYaml(vms, settings);
  await writeConfig(out, yaml, force);
  output.write(
    `wrote ${out} (${vms.length} VM${vms.length > 1 ? "s" : ""}); check it with: rfboot plan --config ${out}\n`,
  );
  return out;
}

/** registerInit adds `rfboot init`. */
export function registerInit(program: Command): void {
  program
    .command("init")
    .description("write a new config: an interactive wizard, or --yes with flags")
    .option("-o, --out <file>", "config file to write (default rfboot.yaml)")
    .option("-f, --force", "overwrite --out if it exists")
    .option("-y, --yes", "ask nothing: take the answers from the flags below (defaults for the rest)")
    .option("--hypervisor <name>", `${HYPERVISOR_NAMES.join(", ")} (default qemu)`)
    .option("--name <name>", "VM name (default rfvmA)")
    .option("--vm-id <mac>", "RouteFlow vm_id = eth0 MAC (default 02:a0:a0:a0:a0:a0)")
    .option("--dpid <dpid>", "datapath id of the switch (default 0x5)")
    .option("--data-ports <n>", "data NICs eth1..N <-> switch ports 1..N (default 2)")
    .option("--arch <arch>", "guest architecture (default x86_64)")
    .option("--vcpus <n>", "vCPUs (default 1)")
    .option("--memory <mib>", "memory in MiB (default 128)")
    .option("--kernel <path>", "direct kernel boot (default /var/lib/rfboot/guest/vmlinuz)")
    .option("--initrd <path>", "initrd for --kernel (- for none)")
    .option("--image <path>", "boot a disk image instead (qcow2 overlay per VM)")
    .option("--rootfs <path>", "lxc: the container's root filesystem")
    .option(
      "--csv <file>",
      "start from a RouteFlow mapping CSV (rftestNconfig.csv): its VMs, dpids and ports",
    )
    .option("--mode <mode>", "OpenFlow mode: listen (beside rfproxy) or relay (default listen)")
    .option("--listen <host:port>", "where switches connect to rfboot (default 127.0.0.1:6653)")
    .option("--upstream <host:port>", "relay mode: rfproxy's address (default 127.0.0.1:6633)")
    .option("--mongo-uri <uri>", "RouteFlow's MongoDB (default mongodb://127.0.0.1:27017)")
    .option(
      "--host-uri <uri>",
      "libvirt URI of the local host (default from the hypervisor, e.g. qemu:///system)",
    )
    .option(
      "--remote-host <name=uri>",
      "another libvirt host, e.g. rack2=qemu+ssh://root@rack2/system (repeatable)",
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .option("--management-bridge <name>", "bridge of eth0 (default rfbr0)")
    .option("--data-bridge <name>", "bridge of the data NICs, RouteFlow's virtual switch (default dp0)")
    .option("--leave <action>", "when a switch leaves: keep, shutdown, destroy or suspend (default keep)")
    .option(
      "--console-marker <regex>",
      "ready when the console prints this (- for no check; default RFBOOT-GUEST-BOOTED)",
    )
    .option("--readiness-timeout <seconds>", "readiness timeout (default 120)")
    .action(async (opts: InitOptions) => {
      await runInit(opts, process.stdin, process.stdout);
    });
}
