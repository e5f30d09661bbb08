/**
 * parseDomainXml: domain XML -> VmDescription, the inverse of buildDomainXml (round-trip tests) and a
 * reader for `virsh dumpxml` output (libvirt's additions such as PCI addresses, controllers, the pty path
 * are ignored; KiB memory is converted). Only what the model describes is read back.
 */
import { XMLParser } from "fast-xml-parser";
import { ConfigError } from "../common/errors.js";
import { driverOf } from "./drivers.js";
import type {
  Arch,
  Boot,
  Console,
  CrashAction,
  Disk,
  DiskFormat,
  DiskSource,
  Filesystem,
  Hypervisor,
  Interface,
  Lifecycle,
  LifecycleAction,
  VmDescription,
} from "./model.js";

type Node = Record<string, unknown>;

const ARRAY_ELEMENTS = new Set(["disk", "filesystem", "interface", "initarg", "serial", "console"]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  textNodeName: "#text",
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  // Numeric character references (`&#13;`) are decoded only with htmlEntities on.
  htmlEntities: true,
  isArray: (name) => ARRAY_ELEMENTS.has(name),
});

function bad(message: string, value?: unknown): never {
  throw new ConfigError(message, "domain XML", value);
}

/** text returns an element's text: a plain string, or `#text` of an element with attributes. */
function text(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null) {
    const t = (v as Node)["#text"];
    return typeof t === "string" ? t : "";
  }
  return String(v);
}

function attr(n: unknown, name: string): string | undefined {
  if (typeof n !== "object" || n === null) return undefined;
  const v = (n as Node)[`@_${name}`];
  return typeof v === "string" ? v : undefined;
}

function child(n: unknown, name: string): Node | undefined {
  if (typeof n !== "object" || n === null) return undefined;
  const v = (n as Node)[name];
  if (v === undefined) return undefined;
  if (typeof v === "string") return {};
  return v as Node;
}

function list(n: unknown, name: string): Node[] {
  if (typeof n !== "object" || n === null) return [];
  const v = (n as Node)[name];
  if (!Array.isArray(v)) return [];
  return v.map((x) => (typeof x === "string" ? ({ "#text": x } as Node) : (x as Node)));
}

const TO_MIB: Record<string, number> = {
  b: 1 / 1048576,
  bytes: 1 / 1048576,
  KiB: 1 / 1024,
  k: 1 / 1024,
  MiB: 1,
  M: 1,
  GiB: 1024,
  G: 1024,
  TiB: 1048576,
  T: 1048576,
};

function mib(n: unknown): number | undefined {
  const t = text(n);
  if (t === undefined) return undefined;
  const unit = attr(n, "unit") ?? "KiB";
  const f = TO_MIB[unit];
  if (f === undefined) bad(`unsupported memory unit ${unit}`, unit);
  return Math.round(Number(t.trim()) * f);
}

function hypervisorOf(domainType: string | undefined, osType: string | undefined): Hypervisor {
  switch (domainType) {
    case "kvm":
    case "qemu":
    case "lxc":
    case "test":
      return { type: domainType };
    case "xen":
      return { type: "xen", mode: osType === "hvm" ? "hvm" : "pv" };
  }
  return bad("unknown domain type", domainType);
}

function diskOf(d: Node): Disk {
  const type = attr(d, "type");
  const format = (attr(child(d, "driver"), "type") ?? "raw") as DiskFormat;
  const src = child(d, "source");
  let source: DiskSource;
  if (type === "block") {
    source = { type: "block", dev: attr(src, "dev") ?? bad("block disk without source dev") };
  } else {
    const path = attr(src, "file") ?? bad("file disk without source file");
    const bs = child(d, "backingStore");
    const bsSource = attr(child(bs, "source"), "file");
    if (bs && bsSource !== undefined) {
      source = {
        type: "overlay",
        path,
        backing: { path: bsSource, format: (attr(child(bs, "format"), "type") ?? "raw") as DiskFormat },
      };
    } else {
      source = { type: "file", path, format };
    }
  }
  const target = attr(child(d, "target"), "dev");
  return {
    source,
    ...(target !== undefined ? { target } : {}),
    ...(d.readonly !== undefined ? { readonly: true } : {}),
  };
}

function interfaceOf(n: Node, defaultModel: string | undefined): Interface {
  const type = attr(n, "type");
  const mac = attr(child(n, "mac"), "address") ?? bad("interface without mac");
  const target = attr(child(n, "target"), "dev");
  const model = attr(child(n, "model"), "type");
  const common = {
    mac,
    ...(target !== undefined ? { target } : {}),
    ...(model !== undefined && model !== defaultModel ? { model } : {}),
  };
  if (type === "network") {
    return {
      type,
      network: attr(child(n, "source"), "network") ?? bad("network interface without source"),
      ...common,
    };
  }
  if (type === "bridge") {
    const vp = attr(child(n, "virtualport"), "type");
    const tag = attr(child(child(n, "vlan"), "tag"), "id");
    return {
      type,
      bridge: attr(child(n, "source"), "bridge") ?? bad("bridge interface without source"),
      ...(vp === "openvswitch" ? { virtualport: { type: "openvswitch" as const } } : {}),
      ...(tag !== undefined ? { vlan: { tag: Number(tag) } } : {}),
      ...common,
    };
  }
  return bad("unsupported interface type", type);
}

function consoleOf(devices: Node | undefined): Console {
  const serial = list(devices, "serial")[0];
  const cons = list(devices, "console")[0];
  const primary = serial ?? cons;
  if (!primary) return { pty: false };
  const t = attr(primary, "type");
  if (t === "pty") {
    const log = attr(child(primary, "log"), "file");
    return { ...(log !== undefined ? { logFile: log } : {}), pty: true };
  }
  if (t === "file") {
    const p = attr(child(primary, "source"), "path");
    return { ...(p !== undefined ? { logFile: p } : {}), pty: false };
  }
  return { pty: false };
}

/**
 * parseDomainXml reads a domain document back into a VmDescription. `autostart` is not part of domain
 * XML and is never set. Throws ConfigError when the document is not a domain the model can describe.
 */
export function parseDomainXml(xml: string): VmDescription {
  const doc = parser.parse(xml) as Node;
  const d = child(doc, "domain") ?? bad("no <domain> element");
  const os = child(d, "os") ?? bad("no <os> element");
  const osTypeNode = os.type;
  const hypervisor = hypervisorOf(attr(d, "type"), text(osTypeNode));
  const drv = driverOf(hypervisor);

  let boot: Boot;
  const bootloader = text(d.bootloader);
  if (bootloader !== undefined) {
    const args = text(d.bootloader_args);
    boot = { type: "bootloader", bootloader, ...(args !== undefined ? { args } : {}) };
  } else if (os.kernel !== undefined) {
    const initrd = text(os.initrd);
    const cmdline = text(os.cmdline);
    boot = {
      type: "kernel",
      kernel: text(os.kernel)!,
      ...(initrd !== undefined ? { initrd } : {}),
      ...(cmdline !== undefined ? { cmdline } : {}),
    };
  } else if (os.init !== undefined) {
    const args = list(os, "initarg").map((a) => text(a) ?? "");
    boot = { type: "init", init: text(os.init)!, ...(args.length > 0 ? { args } : {}) };
  } else {
    boot = { type: "disk" };
  }

  const lifecycle: { onPoweroff?: LifecycleAction; onReboot?: LifecycleAction; onCrash?: CrashAction } = {};
  if (d.on_poweroff !== undefined) lifecycle.onPoweroff = text(d.on_poweroff) as LifecycleAction;
  if (d.on_reboot !== undefined) lifecycle.onReboot = text(d.on_reboot) as LifecycleAction;
  if (d.on_crash !== undefined) lifecycle.onCrash = text(d.on_crash) as CrashAction;

  const devices = child(d, "devices");
  const disks = list(devices, "disk")
    .filter((x) => (attr(x, "device") ?? "disk") === "disk")
    .map(diskOf);
  const filesystems: Filesystem[] = list(devices, "filesystem")
    .filter((f) => (attr(f, "type") ?? "mount") === "mount")
    .map((f) => ({
      type: "mount" as const,
      source: attr(child(f, "source"), "dir") ?? bad("filesystem without source dir"),
      target: attr(child(f, "target"), "dir") ?? bad("filesystem without target dir"),
      ...(f.readonly !== undefined ? { readonly: true } : {}),
    }));
  const interfaces = list(devices, "interface").map((n) => interfaceOf(n, drv.nicModel));

  const vcpu = d.vcpu;
  const cpuset = attr(vcpu, "cpuset");
  const machine = attr(osTypeNode, "machine");
  const title = text(d.title);
  const description = text(d.description);
  const uuid = text(d.uuid);
  const memoryMiB = mib(d.memory) ?? bad("no <memory>");
  const currentMemoryMiB = mib(d.currentMemory);
  const emulator = text(devices?.emulator);
  const lc: Lifecycle = lifecycle;

  return {
    name: text(d.name) ?? bad("no <name>"),
    ...(uuid !== undefined ? { uuid } : {}),
    ...(title !== undefined ? { title } : {}),
    ...(description !== undefined ? { description } : {}),
    hypervisor,
    arch: (attr(osTypeNode, "arch") ?? "x86_64") as Arch,
    ...(machine !== undefined ? { machine } : {}),
    memoryMiB,
    ...(currentMemoryMiB !== undefined && currentMemoryMiB !== memoryMiB ? { currentMemoryMiB } : {}),
    vcpus: Number(text(vcpu) ?? "1"),
    ...(cpuset !== undefined ? { cpuset } : {}),
    ...(Object.keys(lc).length > 0 ? { lifecycle: lc } : {}),
    boot,
    ...(disks.length > 0 ? { disks } : {}),
    ...(filesystems.length > 0 ? { filesystems } : {}),
    interfaces,
    console: consoleOf(devices),
    ...(emulator !== undefined ? { emulator } : {}),
  };
}
