/**
 * Data NIC hot-plug through the virsh seam: `attach-device` / `detach-device` of one `<interface>`
 * document, `--live` on the running domain and `--config` on its persistent definition (so the change
 * survives a restart), each only where the NIC is missing (attach) or present (detach), judged by MAC from
 * `dumpxml` and `dumpxml --inactive`. Running it twice changes nothing the second time. Where the driver
 * cannot hot-plug (libvirt's test driver has no attach-device at all), the error is a `hotplug-unsupported`
 * VirshError whose message says when the change applies instead.
 */
import { XMLParser } from "fast-xml-parser";
import { RfbootError, VirshError } from "../../common/errors.js";
import { silentLogger, type Logger } from "../../common/log.js";
import { XmlFiles } from "./xml-files.js";
import {
  isDeviceMissing,
  isHotplugUnsupported,
  isNotRunning,
  lastErrorLine,
  type VirshRunner,
} from "./virsh.js";

/** DataNic is one data NIC ready for hot-plug: guest eth`vmPort`, its MAC and host device, its XML. */
export interface DataNic {
  /** N of the guest's ethN (RouteFlow's vm_port). */
  readonly vmPort: number;
  /** The NIC's MAC (lower case); libvirt finds the NIC to detach by it. */
  readonly mac: string;
  /** Host-side device (`rfvmA.2`), when the NIC names one. */
  readonly hostDev?: string;
  /** The `<interface>` document (xmlgen buildInterfaceXml). */
  readonly xml: string;
}

/** HotplugFlag is where a change went: `--live` the running domain, `--config` its persistent definition. */
export type HotplugFlag = "--live" | "--config";

/** HotplugResult tells what attachDataNic / detachDataNic did. */
export interface HotplugResult {
  /** `attached` / `detached`: virsh changed something; `unchanged`: the NIC already was (or was not) there. */
  readonly action: "attached" | "detached" | "unchanged";
  /** The flags virsh ran with (empty when unchanged). */
  readonly flags: readonly HotplugFlag[];
  /** Whether the domain was active (running or paused). */
  readonly running: boolean;
  /** libvirt's driver of the domain (`<domain type='...'>`: qemu, kvm, lxc, ...). */
  readonly domainType: string;
  /**
   * Detach only: the running guest still holds the NIC after the call (qemu asks the guest to release a
   * PCI device and waits a few seconds; a guest that does not answer keeps it until it stops).
   */
  readonly pending?: boolean;
  /** One line for the log and the user: what was done and when the guest sees it. */
  readonly message: string;
}

/** HotplugOptions configure a NicHotplug. */
export interface HotplugOptions {
  readonly run: VirshRunner;
  readonly log?: Logger;
  /** timeoutMs per virsh call (default 30 s). */
  readonly timeoutMs?: number;
  /** tmpDir holds the transient `<interface>` files (default a private 0700 dir under the OS tmpdir). */
  readonly tmpDir?: string;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === "interface",
});

/** DomainNics is what a `dumpxml` says about NICs: the driver, whether it is active, the MACs. */
interface DomainNics {
  readonly type: string;
  readonly active: boolean;
  readonly macs: ReadonlySet<string>;
}

/** parseDomainNics reads `virsh dumpxml` output; an active domain carries an `id` attribute. */
export function parseDomainNics(xml: string): DomainNics {
  const doc = parser.parse(xml) as { domain?: Record<string, unknown> };
  const d = doc.domain;
  if (!d || typeof d !== "object") {
    throw new RfbootError(`virsh dumpxml printed no <domain> element: ${JSON.stringify(xml.slice(0, 80))}`);
  }
  const devices = d.devices as { interface?: { mac?: { "@_address"?: unknown } }[] } | undefined;
  const macs = new Set<string>();
  for (const n of devices?.interface ?? []) {
    const a = n?.mac?.["@_address"];
    if (typeof a === "string") macs.add(a.toLowerCase());
  }
  return { type: String(d["@_type"] ?? "unknown"), active: d["@_id"] !== undefined, macs };
}

/**
 * NicHotplug attaches and detaches data NICs of the domains on libvirt hosts through a VirshRunner.
 * `dispose` removes its private temp dir.
 */
export class NicHotplug {
  private readonly run: VirshRunner;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly xmlFiles: XmlFiles;

  constructor(options: HotplugOptions) {
    this.run = options.run;
    this.xmlFiles = new XmlFiles("rfboot-nic-", options.tmpDir);
    this.log = options.log ?? silentLogger;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private virsh(uri: string, args: string[]) {
    return this.run(uri, args, { timeoutMs: this.timeoutMs });
  }

  /** inspect reads the live (when active) and persistent NIC sets of `domain`. */
  private async inspect(uri: string, domain: string): Promise<{ live?: DomainNics; config: DomainNics }> {
    const current = parseDomainNics((await this.virsh(uri, ["dumpxml", domain])).stdout);
    if (!current.active) return { config: current };
    const config = parseDomainNics((await this.virsh(uri, ["dumpxml", "--inactive", domain])).stdout);
    return { live: current, config };
  }

  /**
   * attachDataNic adds `nic` to `domain` on `uri`: `--live` when the domain is active and its live devices
   * lack the MAC, `--config` when the persistent definition lacks it. A NIC already present in both is left
   * alone (`unchanged`). When the domain stops in between, the live part is dropped and the definition still
   * gets the NIC. Throws a VirshError: `domain-missing`, `unreachable`, ..., or `hotplug-unsupported` when
   * the driver refuses (after adding the NIC to the definition alone where the driver allows that).
   */
  async attachDataNic(uri: string, domain: string, nic: DataNic): Promise<HotplugResult> {
    const mac = nic.mac.toLowerCase();
    const { live, config } = await this.inspect(uri, domain);
    const flags: HotplugFlag[] = [];
    if (live && !live.macs.has(mac)) flags.push("--live");
    if (!config.macs.has(mac)) flags.push("--config");
    const what = `NIC eth${nic.vmPort} (${mac}${nic.hostDev ? `, ${nic.hostDev}` : ""}) of ${domain}`;
    const base = { running: live !== undefined, domainType: config.type };
    if (flags.length === 0) {
      const message = `${what} is already attached; nothing to do`;
      this.log.debug({ uri, domain, mac }, message);
      return { action: "unchanged", flags, ...base, message };
    }
    let used = flags;
    try {
      await this.device(uri, "attach-device", domain, nic, flags);
    } catch (e) {
      const retry = flags.includes("--config") && flags.includes("--live");
      if (retry && isNotRunning(e)) {
        // It stopped between dumpxml and attach: the definition still gets the NIC.
        used = ["--config"];
        await this.device(uri, "attach-device", domain, nic, used);
        const message = `${what} added to the definition; the domain stopped meanwhile, it gets the NIC at its next start`;
        this.log.info({ uri, domain, mac, flags: used }, message);
        return { action: "attached", flags: used, ...base, running: false, message };
      }
      if (!isHotplugUnsupported(e)) throw e;
      throw await this.unsupported(uri, domain, nic, what, config.type, flags, e as VirshError, "attach");
    }
    const message = this.attachedMessage(what, nic.vmPort, config.type, used, live !== undefined);
    this.log.info({ uri, domain, mac, flags: used, driver: config.type }, message);
    return { action: "attached", flags: used, ...base, message };
  }

  private attachedMessage(
    what: string,
    vmPort: number,
    type: string,
    flags: readonly HotplugFlag[],
    running: boolean,
  ): string {
    if (!flags.includes("--live")) {
      return running
        ? `${what} was attached live already; added to the definition too`
        : `${what} added to the definition; the guest gets it at the domain's next start`;
    }
    const where = flags.includes("--config") ? "live and to the definition" : "live (the definition had it)";
    if (type === "lxc") {
      // Seen on libvirt 9.0: a hot-plugged veth enters the container as vnetN, link down (even with
      // <guest dev>); only a container start names NICs eth0..N in <interface> order.
      return `${what} attached ${where}; inside the running container libvirt's lxc driver names it vnetN (link down): it is eth${vmPort} after the container's next start`;
    }
    return `${what} attached ${where}`;
  }

  /**
   * detachDataNic removes `nic` (found by MAC) from `domain` on `uri`: `--live` when the running domain has
   * it, `--config` when the definition has it; a NIC in neither is `unchanged`. `pending` reports a guest
   * that has not released the NIC yet. Errors as attachDataNic.
   */
  async detachDataNic(uri: string, domain: string, nic: DataNic): Promise<HotplugResult> {
    const mac = nic.mac.toLowerCase();
    const { live, config } = await this.inspect(uri, domain);
    const flags: HotplugFlag[] = [];
    if (live?.macs.has(mac)) flags.push("--live");
    if (config.macs.has(mac)) flags.push("--config");
    const what = `NIC eth${nic.vmPort} (${mac}${nic.hostDev ? `, ${nic.hostDev}` : ""}) of ${domain}`;
    const base = { running: live !== undefined, domainType: config.type };
    if (flags.length === 0) {
      const message = `${what} is not attached; nothing to detach`;
      this.log.debug({ uri, domain, mac }, message);
      return { action: "unchanged", flags, ...base, message };
    }
    try {
      await this.device(uri, "detach-device", domain, nic, flags);
    } catch (e) {
      if (isDeviceMissing(e)) {
        // Gone in between (another detach, a restart): judge by what is there now.
        const again = await this.inspect(uri, domain);
        if (!again.live?.macs.has(mac) && !again.config.macs.has(mac)) {
          return {
            action: "unchanged",
            flags: [],
            ...base,
            message: `${what} is not attached; nothing to detach`,
          };
        }
        throw e;
      }
      if (!isHotplugUnsupported(e)) throw e;
      throw await this.unsupported(uri, domain, nic, what, config.type, flags, e as VirshError, "detach");
    }
    let pending = false;
    if (flags.includes("--live")) {
      const after = await this.inspect(uri, domain);
      pending = after.live?.macs.has(mac) ?? false;
    }
    const message = pending
      ? `${what} detach requested; the guest has not released it yet (it goes when the guest acknowledges, or at the domain's stop)`
      : `${what} detached${flags.includes("--live") ? " live" : ""}${flags.includes("--config") ? `${flags.includes("--live") ? " and" : ""} from the definition` : ""}`;
    this.log.info({ uri, domain, mac, flags, pending }, message);
    return { action: "detached", flags, ...base, ...(flags.includes("--live") ? { pending } : {}), message };
  }

  /**
   * unsupported handles a refused hot-plug: when the live change was refused and the definition needs the
   * change too, it tries `--config` alone; either way it returns the `hotplug-unsupported` error to throw,
   * whose message says when the change applies.
   */
  private async unsupported(
    uri: string,
    domain: string,
    nic: DataNic,
    what: string,
    type: string,
    flags: readonly HotplugFlag[],
    err: VirshError,
    op: "attach" | "detach",
  ): Promise<VirshError> {
    // The definition is right when it needed nothing, or when `--config` alone goes through.
    let persisted = !flags.includes("--config");
    if (flags.includes("--live") && flags.includes("--config")) {
      try {
        await this.device(uri, `${op}-device`, domain, nic, ["--config"]);
        persisted = true;
      } catch (e) {
        if (!isHotplugUnsupported(e)) throw e;
      }
    }
    const when = persisted
      ? `the definition has the change: the guest sees it at the domain's next start`
      : op === "attach"
        ? `the NIC is added when rfboot next defines and starts the domain (the switch's next join)`
        : `the NIC goes when rfboot next defines the domain without it (the switch's next join)`;
    const live = flags.includes("--live") ? " live" : "";
    const message = `cannot ${op} ${what}${live}: libvirt's ${type} driver refuses it (${lastErrorLine(err.stderr)}); ${when}`;
    this.log.warn({ uri, domain, mac: nic.mac, driver: type, persisted }, message);
    return new VirshError(message, "hotplug-unsupported", err.args, err.stderr, err.exitCode, { cause: err });
  }

  /** device writes the NIC document to a private 0600 file and runs `OP DOMAIN FILE FLAGS...`. */
  private async device(
    uri: string,
    op: "attach-device" | "detach-device",
    domain: string,
    nic: DataNic,
    flags: readonly HotplugFlag[],
  ): Promise<void> {
    await this.xmlFiles.withFile(`${domain}-eth${nic.vmPort}`, nic.xml, (file) =>
      this.virsh(uri, [op, domain, file, ...flags]),
    );
  }

  /** dispose removes the private temp dir (files are removed after each call already). */
  dispose(): Promise<void> {
    return this.xmlFiles.dispose();
  }
}
