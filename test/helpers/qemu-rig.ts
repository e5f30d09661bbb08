/**
 * The rig of the tests and benches whose Daemon boots rftest's guest for real (QEMU under TCG, direct kernel
 * boot): a Linux bridge for the VMs' eth0, optionally a userspace Open vSwitch bridge for their data NICs,
 * a state directory, a free OpenFlow port, a MongoDB database and a client on it, and the config that ties
 * them together (written to the state directory, parsed). Every name the rig hands out carries a tag random
 * to the run, so runs side by side share nothing; the VM names and the dpids contain the whole tag, so a
 * template VM (`rfvm-{dpid}`) is the rig's too. `cleanup` stops the daemons made by `daemon`, destroys and
 * undefines the rig's domains (with their managed-save images) and removes its storage pools on every
 * libvirt URI its configs named, its bridges and switches, its directory and its database, then checks that
 * none of it is left and throws when something is.
 * Needs root, Open vSwitch, libvirtd, a MongoDB-wire server and the guest (rftest/guest/build-guest.sh).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { MongoClient, type Db } from "mongodb";
import { stringify } from "yaml";
import { silentLogger } from "../../src/common/log.js";
import { Daemon, controllerFromConfig, parseConfig, type RfbootConfig } from "../../src/provisioner/index.js";
import { MONGO_URI } from "./env.js";
import { removePools } from "./libvirt-hosts.js";
import { freePort, sh, shOk } from "./real.js";

/** GUEST_DIR holds rftest's guest: vmlinuz, initrd.gz and the LXC root filesystem (RFBOOT_GUEST_DIR). */
export const GUEST_DIR = process.env.RFBOOT_GUEST_DIR ?? "/var/lib/rfboot/guest";

/** SYSTEM_URI is the machine's own libvirtd, where the rig's host entry points unless told otherwise. */
export const SYSTEM_URI = "qemu:///system";

/** ConfigDoc is a config document as plain data, as its YAML would say it. */
export type ConfigDoc = { [key: string]: unknown };

/** QemuRigOptions shape one rig. */
export interface QemuRigOptions {
  /**
   * letter (one of a-z) names what the rig makes after the test or bench that made it: `rfbt<letter>...`,
   * so a leftover says whose it is.
   */
  letter: string;
  /** data also makes a userspace OVS bridge for the VMs' data NICs and names it in `network.data`. */
  data?: boolean;
  /** lxc: the guest's LXC root filesystem (`rootfs-lxc/init`) must be there too. */
  lxc?: boolean;
}

const ENV = { LC_ALL: "C" };

const isDoc = (x: unknown): x is ConfigDoc => typeof x === "object" && x !== null && !Array.isArray(x);

/** merge lays `over` onto `base`: mappings merge key by key, anything else (a list too) replaces. */
function merge(base: unknown, over: unknown): unknown {
  if (!isDoc(base) || !isDoc(over)) return over === undefined ? base : over;
  const out: ConfigDoc = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
  return out;
}

async function succeeds(cmd: string, args: string[]): Promise<boolean> {
  return (await execa(cmd, args, { env: ENV, reject: false, timeout: 30_000 })).exitCode === 0;
}

/** QemuRig is one rig; make it with startQemuRig. */
export class QemuRig {
  /** tag is random to the run (6 hex digits); every name below contains it or its first four digits. */
  readonly tag: string;
  readonly letter: string;
  readonly guestDir = GUEST_DIR;
  /** stateDir is the config's `stateDir` (console logs, disks); configPath the last config written there. */
  readonly stateDir: string;
  readonly configPath: string;
  /** mgmt is the Linux bridge of the VMs' eth0 (`network.management`). */
  readonly mgmt: string;
  /** data is the OVS bridge of the VMs' data NICs (`network.data`), with the `data` option. */
  readonly data: string | undefined;
  /** pool is the storage pool of the rig's host entries (created by rfboot, with `<pool>-console`). */
  readonly pool: string;
  /** dbName is the config's MongoDB database; db is that database on `mongo`, the rig's client. */
  readonly dbName: string;
  readonly mongo: MongoClient;
  readonly db: Db;
  /** port is the daemon's OpenFlow listen port (127.0.0.1). */
  readonly port: number;
  private readonly uris = new Set<string>();
  private readonly switches = new Set<string>();
  private readonly daemons: Daemon[] = [];
  private cleaning: Promise<void> | undefined;

  /** @internal startQemuRig makes the parts. */
  constructor(o: QemuRigOptions, tag: string, stateDir: string, mongo: MongoClient, port: number) {
    this.tag = tag;
    this.letter = o.letter;
    this.stateDir = stateDir;
    this.configPath = join(stateDir, "rfboot.yaml");
    const short = tag.slice(0, 4);
    this.mgmt = `rfbt${o.letter}m${short}`;
    this.data = o.data ? `rfbt${o.letter}d${short}` : undefined;
    this.pool = `rfbt-${o.letter}-${tag}`;
    this.dbName = `rfbt_${o.letter}_${tag}`;
    this.mongo = mongo;
    this.db = mongo.db(this.dbName);
    this.port = port;
  }

  /**
   * vm names the k-th VM (11 characters for k = 0, 12 up to k = 9), so that RouteFlow's data NIC names
   * `<vm>.<n>` fit Linux's 15-character limit.
   */
  vm(k = 0): string {
    return `rfbt${this.letter}${k === 0 ? "" : k}${this.tag}`;
  }

  /** dpid is the k-th datapath id (8 hex digits: a template name `rfvm-{dpid}.<n>` fits 15 characters). */
  dpid(k = 0): string {
    return `e${k.toString(16)}${this.tag}`;
  }

  /** switchName names the k-th switch (an OVS bridge the test makes with addSwitch); cleanup removes it. */
  switchName(k = 0): string {
    const name = `rfbt${this.letter}s${k === 0 ? "" : k}${this.tag.slice(0, 4)}`;
    this.switches.add(name);
    return name;
  }

  /** host is a `hosts[]` entry with the rig's pool: `local` on qemu:///system, unless `over` says else. */
  host(over: ConfigDoc = {}): ConfigDoc {
    return { name: "local", uri: SYSTEM_URI, maxVms: 2, pool: this.pool, ...over };
  }

  /**
   * config lays `over` onto the rig's own parts (state directory, OpenFlow listen port, database, one host,
   * the guest's kernel boot with its console marker's name, the bridges), writes the YAML to configPath and
   * returns it parsed. Lists replace (`hosts: [rig.host(), ...]` for more hosts). Every host's URI becomes
   * one that cleanup clears of the rig's domains and pools.
   */
  config(over: ConfigDoc & { datapaths: ConfigDoc }): RfbootConfig {
    const doc = merge(this.base(), over) as ConfigDoc;
    for (const h of Array.isArray(doc.hosts) ? doc.hosts : [])
      if (isDoc(h) && typeof h.uri === "string") this.uris.add(h.uri);
    const yaml = stringify(doc);
    writeFileSync(this.configPath, yaml);
    return parseConfig(yaml, { format: "yaml", source: this.configPath });
  }

  /**
   * daemon makes an in-process Daemon on `config` (silent, its controller from the config, an instance id of
   * the rig's); cleanup stops it first, so that it starts no VM again while the rig's are removed.
   */
  daemon(config: RfbootConfig): Daemon {
    const d = new Daemon({
      config,
      logger: silentLogger,
      instanceId: `rfbt-${this.letter}-${this.tag}`,
      createController: controllerFromConfig,
    });
    this.daemons.push(d);
    return d;
  }

  private base(): ConfigDoc {
    return {
      stateDir: this.stateDir,
      openflow: { mode: "listen", listen: { host: "127.0.0.1", port: this.port }, versions: ["1.3"] },
      mongo: { uri: MONGO_URI, database: this.dbName },
      hosts: [this.host()],
      defaults: {
        hypervisor: "qemu",
        memoryMiB: 128,
        boot: {
          type: "kernel",
          kernel: `${GUEST_DIR}/vmlinuz`,
          initrd: `${GUEST_DIR}/initrd.gz`,
          cmdline: "console=ttyS0 no_timer_check rfboot.name={name}",
        },
        network: {
          management: { type: "bridge", bridge: this.mgmt },
          ...(this.data ? { data: { bridge: this.data, openvswitch: true } } : {}),
        },
      },
    };
  }

  /** domains lists the rig's domains (their names contain the tag) on every URI its configs named. */
  private async domains(): Promise<[uri: string, name: string][]> {
    const out: [string, string][] = [];
    for (const uri of this.uris) {
      const list = await execa("virsh", ["-c", uri, "list", "--all", "--name"], { env: ENV, reject: false });
      if (list.exitCode !== 0) continue;
      for (const name of list.stdout.split("\n").map((s) => s.trim()))
        if (name.includes(this.tag)) out.push([uri, name]);
    }
    return out;
  }

  /**
   * removeDomains destroys and undefines the rig's domains, managed-save images included, and returns their
   * names (a bench's rounds start from no domain with it).
   */
  async removeDomains(): Promise<string[]> {
    const found = await this.domains();
    for (const [uri, name] of found) {
      await shOk("virsh", ["-c", uri, "destroy", name]);
      await shOk("virsh", ["-c", uri, "undefine", name, "--managed-save"]);
      // A driver without managed save (LXC) may refuse the flag: plain undefine then.
      if (await succeeds("virsh", ["-c", uri, "dominfo", name]))
        await shOk("virsh", ["-c", uri, "undefine", name]);
    }
    return found.map(([, name]) => name);
  }

  /**
   * leftovers lists what of the rig exists: domains, pools, bridges and switches (and links named after
   * them), the state directory, the database. Empty after cleanup.
   */
  async leftovers(): Promise<string[]> {
    const out = (await this.domains()).map(([uri, name]) => `domain ${name} on ${uri}`);
    for (const uri of this.uris)
      for (const p of [this.pool, `${this.pool}-console`])
        if (await succeeds("virsh", ["-c", uri, "pool-info", p])) out.push(`pool ${p} on ${uri}`);
    const bridges = [...(this.data ? [this.data] : []), ...this.switches];
    for (const br of bridges)
      if (await succeeds("ovs-vsctl", ["br-exists", br])) out.push(`ovs bridge ${br}`);
    const mine = [this.mgmt, ...bridges];
    for (const link of (await sh("ip", ["-o", "link", "show"])).matchAll(/^\d+: ([^:@\s]+)/gm)) {
      const name = link[1]!;
      if (name.includes(this.tag) || mine.some((m) => name.startsWith(m))) out.push(`link ${name}`);
    }
    if (existsSync(this.stateDir)) out.push(`directory ${this.stateDir}`);
    const client = await MongoClient.connect(MONGO_URI);
    try {
      const { databases } = await client.db().admin().listDatabases({ nameOnly: true });
      if (databases.some((d) => d.name === this.dbName)) out.push(`database ${this.dbName}`);
    } finally {
      await client.close();
    }
    return out;
  }

  /**
   * cleanup stops the rig's daemons and removes everything they and the rig made (see the module comment),
   * then throws if any of it is left. A Daemon made otherwise must be stopped before: a running one may
   * start its VMs again. Calling it again returns the first call's outcome.
   */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      for (const d of this.daemons) await d.stop().catch(() => undefined);
      await this.removeDomains();
      for (const uri of this.uris) removePools(uri, [this.pool]);
      for (const br of [...this.switches, ...(this.data ? [this.data] : [])])
        await shOk("ovs-vsctl", ["--if-exists", "del-br", br]);
      await shOk("ip", ["link", "del", this.mgmt]);
      rmSync(this.stateDir, { recursive: true, force: true });
      await this.db.dropDatabase().catch(() => undefined);
      await this.mongo.close();
      const left = await this.leftovers();
      if (left.length > 0) throw new Error(`the QEMU test rig ${this.tag} left: ${left.join("; ")}`);
    })();
    return this.cleaning;
  }
}

/**
 * startQemuRig checks the guest files, then makes the state directory, the database client, the bridges and
 * the port; on a failure it removes what it made and throws.
 */
export async function startQemuRig(o: QemuRigOptions): Promise<QemuRig> {
  if (!/^[a-z]$/.test(o.letter))
    throw new Error(`QEMU test rig: letter ${JSON.stringify(o.letter)} is not a-z`);
  for (const f of ["vmlinuz", "initrd.gz", ...(o.lxc ? ["rootfs-lxc/init"] : [])])
    if (!existsSync(join(GUEST_DIR, f)))
      throw new Error(`the rftest guest is missing ${f} in ${GUEST_DIR}: run rftest/guest/build-guest.sh`);
  const tag = randomBytes(3).toString("hex");
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), `rfbt-${o.letter}-`));
  let mongo: MongoClient;
  try {
    mongo = await MongoClient.connect(MONGO_URI);
  } catch (e) {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const rig = new QemuRig(o, tag, stateDir, mongo, port);
  try {
    await sh("ip", ["link", "add", rig.mgmt, "type", "bridge"]);
    await sh("ip", ["link", "set", rig.mgmt, "up"]);
    if (rig.data)
      await sh("ovs-vsctl", ["add-br", rig.data, "--", "set", "bridge", rig.data, "datapath_type=netdev"]);
  } catch (e) {
    await rig.cleanup().catch(() => undefined);
    throw e;
  }
  return rig;
}
