/**
 * validateVmDescription: every name, path, MAC, uuid and free-text value is checked before any XML is
 * built, so a config value can neither break the document nor smuggle markup into it. Failures are
 * ConfigErrors naming the field path (`vm.interfaces[2].mac`) and the offending value.
 */
import { ConfigError } from "../common/errors.js";
import { diskTargetName, driverOf, hypervisorName } from "./drivers.js";
import {
  CRASH_ACTIONS,
  LIFECYCLE_ACTIONS,
  type Boot,
  type Console,
  type Disk,
  type DiskSource,
  type Filesystem,
  type Hypervisor,
  type Interface,
  type Lifecycle,
  type Vlan,
  type VmDescription,
  VLAN_TAG_MAX,
  VLAN_TAG_MIN,
} from "./model.js";
import { IFNAMSIZ_MAX, MAC_RE } from "./routeflow.js";
import { UUID_RE, stableUuid } from "./uuid.js";

/** NAME_RE: a domain name; `-` or `.` first is refused (option-like for virsh, hidden-file-like on disk). */
export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** DEV_RE: a host network device or bridge name (Linux: at most IFNAMSIZ_MAX bytes, no `/` or spaces). */
const DEV_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** Host device prefixes libvirt reserves for its own generated names: a target with one is replaced. */
const RESERVED_DEV_PREFIXES = ["vnet", "vif", "macvtap", "macvlan"] as const;

/** DISK_TARGET_RE: guest disk names libvirt understands (`vda`, `xvdb`, `sdc`, `hdd`). */
const DISK_TARGET_RE = /^(vd|xvd|sd|hd)[a-z]{1,3}$/;

/** MAX_PATH is Linux PATH_MAX including the NUL. */
const MAX_PATH = 4095;

/** MAX_TEXT bounds free-text fields (title, description, cmdline, init args). */
const MAX_TEXT = 65_536;

/** Upper bounds: 16 TiB of memory, 4096 vcpus (beyond any host libvirt runs on). */
const MAX_MEMORY_MIB = 16 * 1024 * 1024;
const MAX_VCPUS = 4096;

/**
 * XML_CHAR_RE matches a string made only of XML 1.0 Chars (XML 1.0 §2.2 production [2]):
 * tab, LF, CR, U+0020..U+D7FF, U+E000..U+FFFD, U+10000..U+10FFFF. NUL and other C0 controls, lone
 * surrogates and U+FFFE/U+FFFF cannot appear in an XML document at all, not even escaped.
 */
const XML_CHAR_RE = /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;

const CPUSET_ITEM_RE = /^(?:(\d+)(?:-(\d+))?|\^(\d+))$/;

function fail(message: string, path: string, value: unknown): never {
  throw new ConfigError(message, path, value);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown, path: string): string {
  if (typeof v !== "string") fail(`must be a string, got ${v === null ? "null" : typeof v}`, path, v);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") fail(`must be true or false`, path, v);
  return v;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(`must be an integer from ${min} to ${max}`, path, v);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    fail(`must be one of ${allowed.join(", ")}`, path, v);
  }
  return v as T;
}

/** checkName validates a domain name (NAME_RE). */
function checkName(v: unknown, path: string): string {
  const s = str(v, path);
  if (s.length === 0) fail("must not be empty", path, v);
  if (s.length > 64) fail("must be at most 64 characters", path, v);
  if (!NAME_RE.test(s)) fail("may contain only A-Z a-z 0-9 _ . - and must not start with . or -", path, v);
  return s;
}

/**
 * checkText validates a free-text value: any XML 1.0 character is fine (it is escaped on output);
 * characters XML cannot carry are refused. `singleLine` also refuses line breaks (libvirt's `<title>`).
 */
function checkText(v: unknown, path: string, singleLine = false): string {
  const s = str(v, path);
  if (s.length > MAX_TEXT) fail(`must be at most ${MAX_TEXT} characters`, path, v);
  if (!XML_CHAR_RE.test(s)) {
    fail(
      "contains a character XML 1.0 cannot represent (NUL, a control character or a lone surrogate)",
      path,
      v,
    );
  }
  if (singleLine && /[\r\n]/.test(s)) fail("must be a single line (no line break)", path, v);
  return s;
}

/**
 * checkPath validates a host (or container) path: absolute, no `..` component (no escaping the
 * intended directory), no control characters, at most PATH_MAX. Quotes, `<`, `&` are legal in Unix
 * paths and are escaped on output.
 */
function checkPath(v: unknown, path: string): string {
  const s = str(v, path);
  if (!s.startsWith("/")) fail("must be an absolute path (start with /)", path, v);
  if (s.length > MAX_PATH) fail(`must be at most ${MAX_PATH} characters`, path, v);
  if (s.split("/").includes("..")) fail("must not contain a .. component", path, v);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s) || !XML_CHAR_RE.test(s)) {
    fail("must not contain control characters", path, v);
  }
  return s;
}

/** checkMac validates a unicast, non-zero MAC and returns it lower-case. */
function checkMac(v: unknown, path: string): string {
  const s = str(v, path);
  if (!MAC_RE.test(s)) fail("must be a MAC address aa:bb:cc:dd:ee:ff", path, v);
  const first = parseInt(s.slice(0, 2), 16);
  if ((first & 1) !== 0)
    fail("must be a unicast MAC (bit 0 of the first byte clear): this one is multicast", path, v);
  if (/^(00:){5}00$/.test(s)) fail("must not be the all-zero MAC", path, v);
  return s.toLowerCase();
}

/** checkDev validates a host network device or bridge name. */
function checkDev(v: unknown, path: string, what: string): string {
  const s = str(v, path);
  if (!DEV_RE.test(s)) {
    fail(
      `${what} must be 1..${IFNAMSIZ_MAX} characters of A-Z a-z 0-9 _ . - (Linux IFNAMSIZ), not starting with . or -`,
      path,
      v,
    );
  }
  return s;
}

function checkUuid(v: unknown, path: string): string {
  const s = str(v, path);
  if (!UUID_RE.test(s)) fail("must be a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", path, v);
  // libvirt's virUUIDIsValid refuses a uuid whose bytes are all the same value (e.g. all zero).
  const hex = s.replaceAll("-", "").toLowerCase();
  if (hex.match(/../g)!.every((b) => b === hex.slice(0, 2))) fail("must not have all bytes equal", path, v);
  return s.toLowerCase();
}

function checkCpuset(v: unknown, path: string): string {
  const s = str(v, path);
  const items = s.split(",");
  for (const item of items) {
    const m = CPUSET_ITEM_RE.exec(item);
    if (!m) fail("must be a cpuset like 0-3,^2 (numbers, ranges, ^exclusions, comma-separated)", path, v);
    if (m[2] !== undefined && Number(m[2]) < Number(m[1])) fail(`range ${item} is reversed`, path, v);
    if (Number(m[2] ?? m[1] ?? m[3]) > 65_535) fail(`cpu ${item} is out of range`, path, v);
  }
  if (items.every((i) => i.startsWith("^")))
    fail("must include at least one cpu, not only exclusions", path, v);
  return s;
}

function checkHypervisor(v: unknown, path: string): Hypervisor {
  if (!isObject(v)) fail("must be an object with a type", path, v);
  const type = oneOf(v.type, `${path}.type`, ["kvm", "qemu", "lxc", "xen", "test"] as const);
  if (type === "xen") return { type, mode: oneOf(v.mode, `${path}.mode`, ["pv", "hvm"] as const) };
  return { type };
}

function checkBoot(v: unknown, path: string, allowed: readonly Boot["type"][], hv: string): Boot {
  if (!isObject(v)) fail("must be an object with a type", path, v);
  const type = oneOf(v.type, `${path}.type`, ["disk", "kernel", "init", "bootloader"] as const);
  if (!allowed.includes(type)) {
    fail(
      `boot type ${type} is not supported by hypervisor ${hv} (use ${allowed.join(" or ")})`,
      `${path}.type`,
      type,
    );
  }
  switch (type) {
    case "disk":
      return { type };
    case "kernel":
      return {
        type,
        kernel: checkPath(v.kernel, `${path}.kernel`),
        ...(v.initrd !== undefined ? { initrd: checkPath(v.initrd, `${path}.initrd`) } : {}),
        ...(v.cmdline !== undefined ? { cmdline: checkText(v.cmdline, `${path}.cmdline`) } : {}),
      };
    case "init": {
      let args: string[] | undefined;
      if (v.args !== undefined) {
        if (!Array.isArray(v.args)) fail("must be a list of strings", `${path}.args`, v.args);
        args = v.args.map((a, i) => checkText(a, `${path}.args[${i}]`));
      }
      return { type, init: checkPath(v.init, `${path}.init`), ...(args && args.length > 0 ? { args } : {}) };
    }
    case "bootloader":
      return {
        type,
        bootloader: checkPath(v.bootloader, `${path}.bootloader`),
        ...(v.args !== undefined ? { args: checkText(v.args, `${path}.args`) } : {}),
      };
  }
}

function checkDiskSource(v: unknown, path: string): DiskSource {
  if (!isObject(v)) fail("must be an object with a type", path, v);
  const type = oneOf(v.type, `${path}.type`, ["file", "overlay", "block"] as const);
  switch (type) {
    case "file":
      return {
        type,
        path: checkPath(v.path, `${path}.path`),
        format: oneOf(v.format, `${path}.format`, ["raw", "qcow2"] as const),
      };
    case "overlay": {
      if (!isObject(v.backing)) fail("must be an object {path, format}", `${path}.backing`, v.backing);
      const p = checkPath(v.path, `${path}.path`);
      const bp = checkPath(v.backing.path, `${path}.backing.path`);
      if (bp === p) fail("an overlay cannot be its own backing file", `${path}.backing.path`, bp);
      return {
        type,
        path: p,
        backing: {
          path: bp,
          format: oneOf(v.backing.format, `${path}.backing.format`, ["raw", "qcow2"] as const),
        },
      };
    }
    case "block":
      return { type, dev: checkPath(v.dev, `${path}.dev`) };
  }
}

function checkLifecycle(v: unknown, path: string): Lifecycle {
  if (!isObject(v)) fail("must be an object", path, v);
  return {
    ...(v.onPoweroff !== undefined
      ? { onPoweroff: oneOf(v.onPoweroff, `${path}.onPoweroff`, LIFECYCLE_ACTIONS) }
      : {}),
    ...(v.onReboot !== undefined
      ? { onReboot: oneOf(v.onReboot, `${path}.onReboot`, LIFECYCLE_ACTIONS) }
      : {}),
    ...(v.onCrash !== undefined ? { onCrash: oneOf(v.onCrash, `${path}.onCrash`, CRASH_ACTIONS) } : {}),
  };
}

function checkInterface(v: unknown, path: string, lxc: boolean): Interface {
  if (!isObject(v)) fail("must be an object with a type", path, v);
  const type = oneOf(v.type, `${path}.type`, ["bridge", "network"] as const);
  const mac = checkMac(v.mac, `${path}.mac`);
  let target: string | undefined;
  if (v.target !== undefined) {
    target = checkDev(v.target, `${path}.target`, "host device name");
    const reserved = RESERVED_DEV_PREFIXES.find((p) => target!.startsWith(p));
    if (reserved) {
      fail(
        `host device names starting with ${reserved} are reserved by libvirt (it would rename the device)`,
        `${path}.target`,
        target,
      );
    }
  }
  let model: string | undefined;
  if (v.model !== undefined) {
    model = str(v.model, `${path}.model`);
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(model))
      fail("must be a NIC model name like virtio or e1000", `${path}.model`, v.model);
    if (lxc) fail("lxc interfaces are veth pairs and take no model", `${path}.model`, v.model);
  }
  const common = {
    mac,
    ...(target !== undefined ? { target } : {}),
    ...(model !== undefined ? { model } : {}),
  };
  if (type === "network") {
    const network = str(v.network, `${path}.network`);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(network)) {
      fail(
        "must be a libvirt network name of A-Z a-z 0-9 _ . - (1..64 characters)",
        `${path}.network`,
        v.network,
      );
    }
    return { type, network, ...common };
  }
  const bridge = checkDev(v.bridge, `${path}.bridge`, "bridge name");
  let virtualport: { type: "openvswitch" } | undefined;
  if (v.virtualport !== undefined) {
    if (!isObject(v.virtualport)) fail("must be {type: openvswitch}", `${path}.virtualport`, v.virtualport);
    virtualport = { type: oneOf(v.virtualport.type, `${path}.virtualport.type`, ["openvswitch"] as const) };
  }
  let vlan: Vlan | undefined;
  if (v.vlan !== undefined) {
    if (!isObject(v.vlan)) fail("must be {tag: 1..4094}", `${path}.vlan`, v.vlan);
    const tag = v.vlan.tag;
    if (typeof tag !== "number" || !Number.isInteger(tag) || tag < VLAN_TAG_MIN || tag > VLAN_TAG_MAX)
      fail(`must be an integer ${VLAN_TAG_MIN}..${VLAN_TAG_MAX} (802.1Q VLAN id)`, `${path}.vlan.tag`, tag);
    if (!virtualport) {
      fail(
        "a VLAN tag needs virtualport {type: openvswitch}: libvirt tags only Open vSwitch ports of a bridge",
        `${path}.vlan`,
        v.vlan,
      );
    }
    vlan = { tag };
  }
  return {
    type,
    bridge,
    ...(virtualport ? { virtualport } : {}),
    ...(vlan ? { vlan } : {}),
    ...common,
  };
}

/**
 * validateVmDescription checks `vm` against the model and its driver's row in DRIVERS and returns the
 * normalised description build.ts renders: uuid filled in (stableUuid of the name when absent) and
 * lower-cased, MACs lower-cased, disk targets filled in per driver, console made explicit, and defaults
 * that change nothing in the XML dropped (empty lists, `readonly: false`, currentMemory = memory), so
 * `parseDomainXml(buildDomainXml(vm))` equals it (but for `autostart`, which is not domain XML).
 * Throws ConfigError naming the field path under `path` (default `vm`) and the value.
 */
export function validateVmDescription(vm: VmDescription, path = "vm"): VmDescription {
  const v: unknown = vm;
  if (!isObject(v)) fail("must be an object", path, v);
  const name = checkName(v.name, `${path}.name`);
  const uuid = v.uuid !== undefined ? checkUuid(v.uuid, `${path}.uuid`) : stableUuid(name);
  const hypervisor = checkHypervisor(v.hypervisor, `${path}.hypervisor`);
  const hv = hypervisorName(hypervisor);
  const drv = driverOf(hypervisor);

  const arch = oneOf(v.arch, `${path}.arch`, drv.arches);
  let machine: string | undefined;
  if (v.machine !== undefined) {
    machine = str(v.machine, `${path}.machine`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(machine))
      fail("must be a machine type like pc or q35", `${path}.machine`, v.machine);
    if (drv.osType === "exe") fail("lxc domains have no machine type", `${path}.machine`, v.machine);
    if (drv.machines && !drv.machines.includes(machine)) {
      fail(`must be one of ${drv.machines.join(", ")} for ${hv}`, `${path}.machine`, v.machine);
    }
  }
  const memoryMiB = int(v.memoryMiB, `${path}.memoryMiB`, 1, MAX_MEMORY_MIB);
  let currentMemoryMiB: number | undefined;
  if (v.currentMemoryMiB !== undefined) {
    currentMemoryMiB = int(v.currentMemoryMiB, `${path}.currentMemoryMiB`, 1, MAX_MEMORY_MIB);
    if (currentMemoryMiB > memoryMiB) {
      fail(`must not exceed memoryMiB (${memoryMiB})`, `${path}.currentMemoryMiB`, currentMemoryMiB);
    }
  }
  const vcpus = int(v.vcpus, `${path}.vcpus`, 1, MAX_VCPUS);
  const cpuset = v.cpuset !== undefined ? checkCpuset(v.cpuset, `${path}.cpuset`) : undefined;
  const title = v.title !== undefined ? checkText(v.title, `${path}.title`, true) : undefined;
  if (title === "") fail("must not be empty (omit it instead)", `${path}.title`, title);
  const description =
    v.description !== undefined ? checkText(v.description, `${path}.description`) : undefined;
  const lifecycle = v.lifecycle !== undefined ? checkLifecycle(v.lifecycle, `${path}.lifecycle`) : undefined;
  const autostart = v.autostart !== undefined ? bool(v.autostart, `${path}.autostart`) : undefined;
  const boot = checkBoot(v.boot, `${path}.boot`, drv.boots, hv);
  const emulator = v.emulator !== undefined ? checkPath(v.emulator, `${path}.emulator`) : undefined;

  // Disks: targets default per driver, in order, skipping any a disk claims explicitly.
  const rawDisks = v.disks ?? [];
  if (!Array.isArray(rawDisks)) fail("must be a list", `${path}.disks`, v.disks);
  if (rawDisks.length > 0 && !drv.disk) {
    fail(
      `hypervisor ${hv} takes no disks (use filesystems for a container root)`,
      `${path}.disks`,
      `${rawDisks.length} disk(s)`,
    );
  }
  const explicitTargets = new Set<string>();
  const seenTargets = new Map<string, number>();
  const parsedDisks: { source: DiskSource; target?: string; readonly?: boolean }[] = rawDisks.map(
    (d: unknown, i) => {
      const p = `${path}.disks[${i}]`;
      if (!isObject(d)) fail("must be an object {source, target?, readonly?}", p, d);
      const source = checkDiskSource(d.source, `${p}.source`);
      let target: string | undefined;
      if (d.target !== undefined) {
        target = str(d.target, `${p}.target`);
        if (!DISK_TARGET_RE.test(target))
          fail("must be a disk name like vda, xvdb, sdc", `${p}.target`, d.target);
        explicitTargets.add(target);
      }
      const ro = d.readonly !== undefined ? bool(d.readonly, `${p}.readonly`) : undefined;
      return {
        source,
        ...(target !== undefined ? { target } : {}),
        ...(ro ? { readonly: true } : {}),
      };
    },
  );
  let next = 0;
  const disks: Disk[] = parsedDisks.map((d, i) => {
    let target = d.target;
    if (target === undefined) {
      do target = diskTargetName(drv.disk!.prefix, next++);
      while (explicitTargets.has(target));
    }
    const prev = seenTargets.get(target);
    if (prev !== undefined)
      fail(`duplicate disk target (also disks[${prev}])`, `${path}.disks[${i}].target`, target);
    seenTargets.set(target, i);
    return { ...d, target };
  });
  if (boot.type === "disk" && disks.length === 0) {
    fail("boot type disk needs at least one disk", `${path}.boot.type`, boot.type);
  }

  const rawFs = v.filesystems ?? [];
  if (!Array.isArray(rawFs)) fail("must be a list", `${path}.filesystems`, v.filesystems);
  if (rawFs.length > 0 && !drv.filesystems) {
    fail(
      `hypervisor ${hv} takes no mount filesystems here (lxc only)`,
      `${path}.filesystems`,
      `${rawFs.length} filesystem(s)`,
    );
  }
  const fsTargets = new Map<string, number>();
  const filesystems: Filesystem[] = rawFs.map((f: unknown, i) => {
    const p = `${path}.filesystems[${i}]`;
    if (!isObject(f)) fail("must be an object {type: mount, source, target}", p, f);
    const fs: Filesystem = {
      type: oneOf(f.type, `${p}.type`, ["mount"] as const),
      source: checkPath(f.source, `${p}.source`),
      target: checkPath(f.target, `${p}.target`),
      ...(f.readonly !== undefined && bool(f.readonly, `${p}.readonly`) ? { readonly: true } : {}),
    };
    const prev = fsTargets.get(fs.target);
    if (prev !== undefined)
      fail(`duplicate filesystem target (also filesystems[${prev}])`, `${p}.target`, fs.target);
    fsTargets.set(fs.target, i);
    return fs;
  });

  if (!Array.isArray(v.interfaces))
    fail("must be a list (first entry = guest eth0)", `${path}.interfaces`, v.interfaces);
  const macs = new Map<string, number>();
  const devs = new Map<string, number>();
  const interfaces: Interface[] = v.interfaces.map((n: unknown, i) => {
    const p = `${path}.interfaces[${i}]`;
    const checked = checkInterface(n, p, drv.osType === "exe");
    // A model equal to the driver's default says nothing: dropped so it compares equal to none.
    let nic = checked;
    if (checked.model !== undefined && checked.model === drv.nicModel) {
      const { model: _m, ...rest } = checked;
      nic = rest;
    }
    const prevMac = macs.get(nic.mac);
    if (prevMac !== undefined) fail(`duplicate MAC (also interfaces[${prevMac}])`, `${p}.mac`, nic.mac);
    macs.set(nic.mac, i);
    if (nic.target !== undefined) {
      const prevDev = devs.get(nic.target);
      if (prevDev !== undefined)
        fail(`duplicate host device (also interfaces[${prevDev}])`, `${p}.target`, nic.target);
      devs.set(nic.target, i);
    }
    return nic;
  });

  // Console: normalised to what the XML will say: pty defaults to true; lxc drops logFile (no serial
  // port, and libvirt's lxc driver ignores `<log>` on its console: checked on libvirt 9.0).
  const c = v.console ?? {};
  if (!isObject(c)) fail("must be an object {logFile?, pty?}", `${path}.console`, c);
  const logFile = c.logFile !== undefined ? checkPath(c.logFile, `${path}.console.logFile`) : undefined;
  const pty = c.pty !== undefined ? bool(c.pty, `${path}.console.pty`) : true;
  const console: Console = { ...(logFile !== undefined && drv.console !== "lxc" ? { logFile } : {}), pty };

  return {
    name,
    uuid,
    ...(title !== undefined ? { title } : {}),
    ...(description !== undefined ? { description } : {}),
    hypervisor,
    arch,
    ...(machine !== undefined ? { machine } : {}),
    memoryMiB,
    // currentMemory equal to memory is the default: dropped so equal descriptions compare equal.
    ...(currentMemoryMiB !== undefined && currentMemoryMiB !== memoryMiB ? { currentMemoryMiB } : {}),
    vcpus,
    ...(cpuset !== undefined ? { cpuset } : {}),
    ...(lifecycle !== undefined && Object.keys(lifecycle).length > 0 ? { lifecycle } : {}),
    ...(autostart !== undefined ? { autostart } : {}),
    boot,
    ...(disks.length > 0 ? { disks } : {}),
    ...(filesystems.length > 0 ? { filesystems } : {}),
    interfaces,
    console,
    ...(emulator !== undefined ? { emulator } : {}),
  };
}
