/**
 * buildDomainXml: a validated VmDescription -> libvirt domain XML (https://libvirt.org/formatdomain.html),
 * rendered with fast-xml-parser's builder. Element order follows `virsh dumpxml` so a generated document
 * and libvirt's own view read alike. Driver differences come from DRIVERS (drivers.ts) only.
 */
import { XMLBuilder } from "fast-xml-parser";
import { driverOf, type DriverTraits } from "./drivers.js";
import type { Boot, Console, Disk, DiskSource, Filesystem, Interface, VmDescription } from "./model.js";
import { validateVmDescription } from "./validate.js";

/** XmlNode is the builder's object form: `@_x` attributes, `#text` text, child elements by name. */
type XmlNode = { [key: string]: string | XmlNode | XmlNode[] | string[] };

/**
 * The builder escapes `& < > ' "` by default; a CR must also become a character reference, or any XML
 * parser turns it into LF (XML 1.0 §2.11 end-of-line handling) and the value would not round-trip.
 * `&` stays first so the other replacements are not escaped twice.
 */
const ENTITIES = [
  { regex: /&/g, val: "&amp;" },
  { regex: />/g, val: "&gt;" },
  { regex: /</g, val: "&lt;" },
  { regex: /'/g, val: "&apos;" },
  { regex: /"/g, val: "&quot;" },
  { regex: /\r/g, val: "&#13;" },
];

// `entities` is honoured by fast-xml-builder (its defaults are the five above) but missing from the
// published options type, hence the widening cast.
const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  textNodeName: "#text",
  format: true,
  indentBy: "  ",
  suppressEmptyNode: true,
  processEntities: true,
  entities: ENTITIES,
} as ConstructorParameters<typeof XMLBuilder>[0]);

function osElement(vm: VmDescription, drv: DriverTraits): XmlNode {
  const type: XmlNode = { "@_arch": vm.arch };
  if (vm.machine !== undefined) type["@_machine"] = vm.machine;
  type["#text"] = drv.osType;
  const os: XmlNode = { type };
  const boot: Boot = vm.boot;
  switch (boot.type) {
    case "disk":
      os.boot = { "@_dev": "hd" };
      break;
    case "kernel":
      os.kernel = boot.kernel;
      if (boot.initrd !== undefined) os.initrd = boot.initrd;
      if (boot.cmdline !== undefined) os.cmdline = boot.cmdline;
      break;
    case "init":
      os.init = boot.init;
      if (boot.args && boot.args.length > 0) os.initarg = [...boot.args];
      break;
    case "bootloader":
      // <bootloader> lives at domain level (formatdomain "Host bootloader"); see buildDomainXml.
      break;
  }
  return os;
}

function diskSourceNodes(src: DiskSource): { type: string; format: string; body: XmlNode } {
  switch (src.type) {
    case "file":
      return { type: "file", format: src.format, body: { source: { "@_file": src.path } } };
    case "overlay":
      // The overlay's backing chain is spelled out so libvirt (and its security drivers) know the base
      // image too (formatdomain "backingStore").
      return {
        type: "file",
        format: "qcow2",
        body: {
          source: { "@_file": src.path },
          backingStore: {
            "@_type": "file",
            format: { "@_type": src.backing.format },
            source: { "@_file": src.backing.path },
          },
        },
      };
    case "block":
      return { type: "block", format: "raw", body: { source: { "@_dev": src.dev } } };
  }
}

function diskElement(d: Disk, drv: DriverTraits): XmlNode {
  const s = diskSourceNodes(d.source);
  const node: XmlNode = {
    "@_type": s.type,
    "@_device": "disk",
    driver: { "@_name": "qemu", "@_type": s.format },
    ...s.body,
    target: { "@_dev": d.target!, "@_bus": drv.disk!.bus },
  };
  if (d.readonly) node.readonly = "";
  return node;
}

function filesystemElement(f: Filesystem): XmlNode {
  const node: XmlNode = {
    "@_type": f.type,
    "@_accessmode": "passthrough",
    source: { "@_dir": f.source },
    target: { "@_dir": f.target },
  };
  if (f.readonly) node.readonly = "";
  return node;
}

function interfaceElement(n: Interface, drv: DriverTraits): XmlNode {
  const node: XmlNode = { "@_type": n.type, mac: { "@_address": n.mac } };
  if (n.type === "bridge") {
    node.source = { "@_bridge": n.bridge };
    if (n.virtualport) node.virtualport = { "@_type": n.virtualport.type };
  } else {
    node.source = { "@_network": n.network };
  }
  if (n.target !== undefined) node.target = { "@_dev": n.target };
  const model = n.model ?? drv.nicModel;
  if (model !== undefined) node.model = { "@_type": model };
  return node;
}

/** consoleElements renders the console wiring of drv.console (see ConsoleWiring and model Console). */
function consoleElements(c: Console | undefined, drv: DriverTraits): XmlNode {
  const pty = c?.pty ?? true;
  const logFile = c?.logFile;
  // `<log>` on a pty makes virtlogd copy everything to the file while `virsh console` still works.
  const log: XmlNode | undefined =
    logFile !== undefined ? { "@_file": logFile, "@_append": "off" } : undefined;
  const out: XmlNode = {};
  switch (drv.console) {
    case "serial":
      if (pty) {
        out.serial = { "@_type": "pty", ...(log ? { log } : {}), target: { "@_port": "0" } };
        out.console = { "@_type": "pty", target: { "@_type": "serial", "@_port": "0" } };
      } else if (logFile !== undefined) {
        out.serial = { "@_type": "file", source: { "@_path": logFile }, target: { "@_port": "0" } };
      }
      break;
    case "xen":
      if (pty)
        out.console = {
          "@_type": "pty",
          ...(log ? { log } : {}),
          target: { "@_type": "xen", "@_port": "0" },
        };
      else if (logFile !== undefined) {
        out.console = {
          "@_type": "file",
          source: { "@_path": logFile },
          target: { "@_type": "xen", "@_port": "0" },
        };
      }
      break;
    case "lxc":
      // LXC has no serial port and libvirt's lxc driver does not log consoles: only the pty exists.
      if (pty) out.console = { "@_type": "pty", target: { "@_type": "lxc", "@_port": "0" } };
      break;
  }
  return out;
}

/**
 * domainTree returns the builder object for an already-validated description (internal; exported for
 * the benchmark's breakdown and tests).
 */
export function domainTree(vm: VmDescription): XmlNode {
  const drv = driverOf(vm.hypervisor);
  const domain: XmlNode = { "@_type": drv.domainType, name: vm.name, uuid: vm.uuid! };
  if (vm.title !== undefined) domain.title = vm.title;
  if (vm.description !== undefined) domain.description = vm.description;
  domain.memory = { "@_unit": "MiB", "#text": String(vm.memoryMiB) };
  domain.currentMemory = { "@_unit": "MiB", "#text": String(vm.currentMemoryMiB ?? vm.memoryMiB) };
  domain.vcpu = {
    "@_placement": "static",
    ...(vm.cpuset !== undefined ? { "@_cpuset": vm.cpuset } : {}),
    "#text": String(vm.vcpus),
  };
  if (vm.boot.type === "bootloader") {
    domain.bootloader = vm.boot.bootloader;
    if (vm.boot.args !== undefined) domain.bootloader_args = vm.boot.args;
  }
  domain.os = osElement(vm, drv);
  if (drv.features.length > 0) {
    const features: XmlNode = {};
    for (const f of drv.features) features[f] = "";
    domain.features = features;
  }
  if (vm.lifecycle?.onPoweroff !== undefined) domain.on_poweroff = vm.lifecycle.onPoweroff;
  if (vm.lifecycle?.onReboot !== undefined) domain.on_reboot = vm.lifecycle.onReboot;
  if (vm.lifecycle?.onCrash !== undefined) domain.on_crash = vm.lifecycle.onCrash;

  const devices: XmlNode = {};
  if (vm.emulator !== undefined) devices.emulator = vm.emulator;
  if (vm.disks && vm.disks.length > 0) devices.disk = vm.disks.map((d) => diskElement(d, drv));
  if (vm.filesystems && vm.filesystems.length > 0) devices.filesystem = vm.filesystems.map(filesystemElement);
  if (vm.interfaces.length > 0) devices.interface = vm.interfaces.map((n) => interfaceElement(n, drv));
  Object.assign(devices, consoleElements(vm.console, drv));
  domain.devices = devices;
  return { domain };
}

/**
 * buildDomainXml validates `vm` (ConfigError on any bad value) and renders its domain XML.
 * Deterministic: the same description gives byte-identical output (the uuid is derived, never random).
 */
export function buildDomainXml(vm: VmDescription): string {
  return builder.build(domainTree(validateVmDescription(vm))) as string;
}
