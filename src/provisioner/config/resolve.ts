/**
 * From config to VMs: defaults -> profile chain -> datapath entry (or template) -> overrides, deep-merged;
 * placeholders substituted; ports, MACs and host devices laid out RouteFlow's way; xmlgen descriptions
 * per host.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import {
  IFNAMSIZ_MAX,
  hypervisorFromName,
  routeflowDataMac,
  routeflowDeviceName,
  stableUuid,
  type Boot,
  type Disk,
  type Filesystem,
  type HypervisorName,
  type Interface,
  type VmDescription,
} from "../../xmlgen/index.js";
import { PLACEHOLDER_RE, VM_NAME_RE, pathProblem } from "./checks.js";
import { dpidHex16, dpidShortHex, vmIdToMac } from "./ids.js";
import { configError, issuesToConfigError, type PathSegment } from "./issues.js";
import {
  MAX_OF_PORT,
  VM_SETTINGS_KEYS,
  vmSettingsSchema,
  type PartialVmSettings,
  type Profile,
  type VmSettings,
} from "./schema.js";
import type {
  DiskPlan,
  HostConfig,
  HostPaths,
  ResolvedDisk,
  ResolvedPort,
  ResolvedVm,
  VmPlan,
  VmSource,
} from "./types.js";

/** VM_SETTINGS_DEFAULTS: every VM setting's built-in default, straight from the schema (one source). */
export const VM_SETTINGS_DEFAULTS: VmSettings = deepFreeze(vmSettingsSchema.parse({}));

/** deepFreeze freezes an object graph in place and returns it. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * mergeSettings deep-merges `over` onto `base`: objects merge key by key, arrays and scalars replace,
 * `null` deletes the inherited value, `undefined` keeps it. A tagged object (`type` key) whose `type`
 * differs from the inherited one replaces it whole, so `boot: {type: disk}` never inherits `kernel`.
 */
export function mergeSettings(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isPlainObject(over) || !isPlainObject(base)) return over;
  if (over.type !== undefined && base.type !== undefined && over.type !== base.type) return stripNulls(over);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = mergeSettings(out[k], v);
  }
  return out;
}

function stripNulls(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

/** pickSettings keeps only the VM-settings keys of a datapath entry, profile or template. */
export function pickSettings(o: Record<string, unknown>): PartialVmSettings {
  const out: Record<string, unknown> = {};
  for (const k of VM_SETTINGS_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out as PartialVmSettings;
}

/** Placeholders are the `{key}` values substituted in names, paths and the kernel command line. */
export type Placeholders = Readonly<Record<string, string>>;

/** PLACEHOLDER_NAMES documents every placeholder for messages and config/README.md. */
export const PLACEHOLDER_NAMES = ["name", "dpid", "dpid16", "dpidDec", "vmId", "vmIdDec", "vmIdHex"] as const;

/** dpidPlaceholders: `{dpid}` short hex, `{dpid16}` 16 hex digits, `{dpidDec}` decimal. */
export function dpidPlaceholders(dpid: bigint): Placeholders {
  return { dpid: dpidShortHex(dpid), dpid16: dpidHex16(dpid), dpidDec: dpid.toString(10) };
}

/** vmPlaceholders: the dpid ones plus `{name}`, `{vmId}` (MAC), `{vmIdDec}`, `{vmIdHex}`. */
export function vmPlaceholders(dpid: bigint, name: string, vmId: bigint): Placeholders {
  return {
    ...dpidPlaceholders(dpid),
    name,
    vmId: vmIdToMac(vmId),
    vmIdDec: vmId.toString(10),
    vmIdHex: vmId.toString(16),
  };
}

/** substitute replaces `{key}` placeholders; an unknown one is a ConfigError at `path`. */
export function substitute(text: string, vars: Placeholders, path: readonly PathSegment[]): string {
  return text.replace(PLACEHOLDER_RE, (whole, key: string) => {
    const v = vars[key];
    if (v === undefined) {
      const known = Object.keys(vars)
        .map((k) => `{${k}}`)
        .join(", ");
      throw configError(path, `unknown placeholder ${whole} (known here: ${known})`, text);
    }
    return v;
  });
}

/**
 * profileChain lists the profiles `name` inherits from, root first, ending with `name` itself.
 * Unknown profiles and cycles are ConfigErrors at `path`.
 */
export function profileChain(
  profiles: Readonly<Record<string, Profile>>,
  name: string,
  path: readonly PathSegment[],
): Profile[] {
  const chain: Profile[] = [];
  const seen: string[] = [];
  let cur: string | undefined = name;
  let curPath = path;
  while (cur !== undefined) {
    if (seen.includes(cur)) {
      throw configError(["profiles", cur, "extends"], `profile cycle: ${[...seen, cur].join(" -> ")}`, cur);
    }
    if (!Object.prototype.hasOwnProperty.call(profiles, cur)) {
      const known = Object.keys(profiles);
      throw configError(
        curPath,
        `unknown profile (${known.length ? `defined: ${known.join(", ")}` : "no profiles are defined"})`,
        cur,
      );
    }
    const p: Profile = profiles[cur]!;
    seen.push(cur);
    chain.unshift(p);
    curPath = ["profiles", cur, "extends"];
    cur = p.extends;
  }
  return chain;
}

/** The parts of a config resolution needs (so load.ts can resolve before the config is frozen). */
export interface ResolveContext {
  readonly defaults: PartialVmSettings;
  readonly profiles: Readonly<Record<string, Profile>>;
}

/** The identity and layout of one VM, decided before its settings. */
export interface VmIdentity {
  readonly source: VmSource;
  readonly dpid: bigint;
  readonly name: string;
  readonly vmId: bigint;
  readonly portPairs: readonly { readonly vmPort: number; readonly dpPort: number }[];
  readonly profile?: string;
  readonly hostPin?: string;
  /** The entry's (or template's) own settings. */
  readonly own: PartialVmSettings;
  /** Key path of the entry, for errors (`datapaths."0x5"`). */
  readonly path: readonly PathSegment[];
}

/** resolveSettings merges defaults, profile chain, own settings and overrides, then substitutes placeholders. */
export function resolveSettings(
  ctx: ResolveContext,
  id: VmIdentity,
  overrides: PartialVmSettings = {},
): VmSettings {
  let merged: unknown = VM_SETTINGS_DEFAULTS;
  merged = mergeSettings(merged, ctx.defaults);
  const profilePath = [...id.path, "profile"];
  if (id.profile !== undefined) {
    for (const p of profileChain(ctx.profiles, id.profile, profilePath))
      merged = mergeSettings(merged, pickSettings(p));
  }
  merged = mergeSettings(merged, id.own);
  merged = mergeSettings(merged, overrides);
  const note = ` (after merging defaults${id.profile ? `, profile ${id.profile}` : ""} and this entry)`;
  const r = vmSettingsSchema.safeParse(merged);
  if (!r.success) throw issuesToConfigError(r.error.issues, merged, { prefix: id.path, note });
  const s = r.data;
  const vars = vmPlaceholders(id.dpid, id.name, id.vmId);
  const sub = (text: string, key: PathSegment[]): string => {
    const out = substitute(text, vars, [...id.path, ...key]);
    return out;
  };
  const path = (text: string, key: PathSegment[]): string => {
    const out = sub(text, key);
    const problem = pathProblem(out);
    if (problem) throw configError([...id.path, ...key], `${problem} (after substituting placeholders)`, out);
    return out;
  };
  let boot: VmSettings["boot"];
  switch (s.boot.type) {
    case "kernel":
      boot = {
        type: "kernel",
        kernel: path(s.boot.kernel, ["boot", "kernel"]),
        ...(s.boot.initrd !== undefined ? { initrd: path(s.boot.initrd, ["boot", "initrd"]) } : {}),
        ...(s.boot.cmdline !== undefined ? { cmdline: sub(s.boot.cmdline, ["boot", "cmdline"]) } : {}),
      };
      break;
    case "init":
      boot = {
        type: "init",
        init: path(s.boot.init, ["boot", "init"]),
        rootfs: path(s.boot.rootfs, ["boot", "rootfs"]),
        ...(s.boot.args !== undefined
          ? { args: s.boot.args.map((a, i) => sub(a, ["boot", "args", i])) }
          : {}),
      };
      break;
    default:
      boot = s.boot;
  }
  const disk = s.disk ? { ...s.disk, image: path(s.disk.image, ["disk", "image"]) } : undefined;
  if (boot.type === "disk" && !disk) {
    throw configError([...id.path, "boot", "type"], "boot type disk needs disk.image (a base image)", "disk");
  }
  return { ...s, boot, ...(disk ? { disk } : {}) };
}

/**
 * dataDeviceName is the host device of data NIC eth`n`: RouteFlow's `<name>.<n>` when it fits Linux's
 * 15 characters, else `rf<8 hex of SHA-256(name)>.<n>` (deterministic; libvirt cannot create longer ones).
 */
export function dataDeviceName(vmName: string, n: number): string {
  if (`${vmName}.${n}`.length <= IFNAMSIZ_MAX) return routeflowDeviceName(vmName, n);
  const h = createHash("sha256").update(`rfboot-dev/${vmName}`).digest("hex").slice(0, 8);
  return `rf${h}.${n}`;
}

/** checkPortPairs rejects duplicate vm ports or switch ports within one VM. */
export function checkPortPairs(
  pairs: readonly { vmPort: number; dpPort: number }[],
  path: readonly PathSegment[],
): void {
  const vm = new Map<number, number>();
  const dp = new Map<number, number>();
  pairs.forEach((p, i) => {
    const a = vm.get(p.vmPort);
    if (a !== undefined)
      throw configError([...path, i, "vmPort"], `vm port used twice (also portMap[${a}])`, p.vmPort);
    const b = dp.get(p.dpPort);
    if (b !== undefined)
      throw configError([...path, i, "dpPort"], `switch port used twice (also portMap[${b}])`, p.dpPort);
    vm.set(p.vmPort, i);
    dp.set(p.dpPort, i);
  });
}

/** buildResolvedVm lays out ports and NICs and attaches describe/plan; the result is frozen. */
export function buildResolvedVm(id: VmIdentity, settings: VmSettings): ResolvedVm {
  if (!VM_NAME_RE.test(id.name)) {
    throw configError(
      [...id.path, "name"],
      "may contain only A-Z a-z 0-9 _ . - (1..64, not starting with . or -)",
      id.name,
    );
  }
  const vmMac = vmIdToMac(id.vmId);
  const macPath = formatIdPath(id.path);
  const ports: ResolvedPort[] = [...id.portPairs]
    .sort((a, b) => a.vmPort - b.vmPort)
    .map((p) => ({
      vmPort: p.vmPort,
      dpPort: p.dpPort,
      mac: routeflowDataMac(vmMac, p.vmPort, macPath),
      hostDev: dataDeviceName(id.name, p.vmPort),
    }));
  const dataNics = ports.reduce((m, p) => Math.max(m, p.vmPort), 0);
  const disk: ResolvedDisk | undefined = settings.disk
    ? {
        kind: settings.disk.prepare,
        base: settings.disk.image,
        baseFormat: settings.disk.format,
        format: settings.disk.prepare === "overlay" ? "qcow2" : settings.disk.format,
        ...(settings.disk.prepare === "none"
          ? {}
          : {
              fileName: `${id.name}.${settings.disk.prepare === "overlay" || settings.disk.format === "qcow2" ? "qcow2" : "img"}`,
            }),
      }
    : undefined;

  const diskPlan = (host: HostConfig, paths: HostPaths): DiskPlan | undefined => {
    if (!disk) return undefined;
    const base = paths.image ?? disk.base;
    return { ...disk, base, path: disk.fileName ? posix.join(host.storageDir, disk.fileName) : base };
  };

  const describe = (host: HostConfig, paths: HostPaths = {}): VmDescription => {
    const s = settings;
    let boot: Boot;
    const filesystems: Filesystem[] = [];
    switch (s.boot.type) {
      case "kernel":
        boot = {
          type: "kernel",
          kernel: paths.kernel ?? s.boot.kernel,
          ...(s.boot.initrd !== undefined ? { initrd: paths.initrd ?? s.boot.initrd } : {}),
          ...(s.boot.cmdline !== undefined ? { cmdline: s.boot.cmdline } : {}),
        };
        break;
      case "disk":
        boot = { type: "disk" };
        break;
      case "init":
        boot = { type: "init", init: s.boot.init, ...(s.boot.args ? { args: s.boot.args } : {}) };
        filesystems.push({ type: "mount", source: s.boot.rootfs, target: "/" });
        break;
      case "bootloader":
        boot = {
          type: "bootloader",
          bootloader: s.boot.bootloader,
          ...(s.boot.args !== undefined ? { args: s.boot.args } : {}),
        };
        break;
    }
    const dp = diskPlan(host, paths);
    const disks: Disk[] = [];
    if (dp) {
      disks.push({
        source:
          dp.kind === "overlay"
            ? { type: "overlay", path: dp.path, backing: { path: dp.base, format: dp.baseFormat } }
            : { type: "file", path: dp.path, format: dp.format },
      });
    }
    const model = s.network.nicModel !== undefined ? { model: s.network.nicModel } : {};
    const mgmt = s.network.management;
    const interfaces: Interface[] = [
      mgmt.type === "bridge"
        ? {
            type: "bridge",
            bridge: mgmt.bridge,
            mac: vmMac,
            ...(mgmt.openvswitch ? { virtualport: { type: "openvswitch" as const } } : {}),
            ...model,
          }
        : { type: "network", network: mgmt.network, mac: vmMac, ...model },
    ];
    // On a host with a data plane the data NICs are ports of that host's own Open vSwitch bridge.
    const dataPlane = host.dataPlane;
    for (let n = 1; n <= dataNics; n++) {
      interfaces.push({
        type: "bridge",
        bridge: dataPlane ? (dataPlane.bridge ?? s.network.data.bridge) : s.network.data.bridge,
        mac: routeflowDataMac(vmMac, n, macPath),
        ...(s.network.data.openvswitch || dataPlane ? { virtualport: { type: "openvswitch" as const } } : {}),
        target: dataDeviceName(id.name, n),
        ...model,
      });
    }
    return {
      name: id.name,
      uuid: stableUuid(id.name),
      title: `rfboot: RouteFlow VM of datapath ${dpidHex16(id.dpid)}`,
      hypervisor: hypervisorFromName(s.hypervisor),
      arch: s.arch,
      ...(s.machine !== undefined ? { machine: s.machine } : {}),
      memoryMiB: s.memoryMiB,
      ...(s.currentMemoryMiB !== undefined ? { currentMemoryMiB: s.currentMemoryMiB } : {}),
      vcpus: s.vcpus,
      ...(s.cpuset !== undefined ? { cpuset: s.cpuset } : {}),
      ...(s.lifecycle !== undefined ? { lifecycle: s.lifecycle } : {}),
      ...(s.autostart !== undefined ? { autostart: s.autostart } : {}),
      boot,
      ...(disks.length ? { disks } : {}),
      ...(filesystems.length ? { filesystems } : {}),
      interfaces,
      console: {
        ...(s.console.log ? { logFile: consoleLogPath(host, id.name) } : {}),
        pty: s.console.pty,
      },
      ...(s.emulator !== undefined ? { emulator: s.emulator } : {}),
    };
  };

  const plan = (host: HostConfig, paths: HostPaths = {}): VmPlan => {
    const dp = diskPlan(host, paths);
    return {
      description: describe(host, paths),
      ...(dp ? { disk: dp } : {}),
      ...(settings.console.log ? { consoleLog: consoleLogPath(host, id.name) } : {}),
    };
  };

  const vm: ResolvedVm = {
    source: id.source,
    dpid: id.dpid,
    dpidHex: dpidHex16(id.dpid),
    name: id.name,
    vmId: id.vmId,
    vmMac,
    hypervisor: settings.hypervisor,
    vcpus: settings.vcpus,
    memoryMiB: settings.memoryMiB,
    ports,
    dataNics,
    ...(id.hostPin !== undefined ? { hostPin: id.hostPin } : {}),
    ...(id.profile !== undefined ? { profile: id.profile } : {}),
    settings,
    ...(disk ? { disk } : {}),
    describe,
    plan,
  };
  return deepFreeze(vm);
}

/** consoleLogPath is where a VM's serial console is logged on `host`. */
export function consoleLogPath(host: HostConfig, vmName: string): string {
  return posix.join(host.consoleLogDir, `${vmName}.log`);
}

function formatIdPath(path: readonly PathSegment[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : p)).join(".") + ".vmId";
}

/** hostAccepts says whether `host` runs VMs of `hypervisor`. */
export function hostAccepts(host: HostConfig, hypervisor: HypervisorName): boolean {
  return host.hypervisors.includes(hypervisor);
}

/** templatePortPairs lays out a template VM's ports from the switch's reported ports (see README). */
export function templatePortPairs(
  dataPorts: "switch" | number,
  maxDataPorts: number,
  switchPorts: readonly number[] | undefined,
): { vmPort: number; dpPort: number }[] {
  if (typeof dataPorts === "number") {
    return Array.from({ length: dataPorts }, (_, i) => ({ vmPort: i + 1, dpPort: i + 1 }));
  }
  // Physical ports only: 0 is invalid, 0xff00..0xffff are OpenFlow 1.0's reserved range (OFPP_LOCAL is
  // 0xfffe there), and above OFPP_MAX (1.3.5 §7.2.1) the 1.3 reserved ports (LOCAL 0xfffffffe).
  const phys = [...new Set(switchPorts ?? [])]
    .filter((p) => Number.isInteger(p) && p >= 1 && p <= MAX_OF_PORT && !(p >= 0xff00 && p <= 0xffff))
    .sort((a, b) => a - b)
    .slice(0, maxDataPorts);
  return phys.map((dpPort, i) => ({ vmPort: i + 1, dpPort }));
}
