/**
 * `rfboot status`: one line per datapath from MongoDB, with live CPU and memory figures from libvirt, then
 * with `policies.prewarm` on, the prewarm images per host against the disk budget, then (live) one line per host
 * with what it reports of its capacity;
 * `--watch` reads again every few seconds: redrawn in place on a terminal, printed again on each change
 * otherwise (a log, a pipe).
 */
import type { Command } from "commander";
import { RfbootError, UsageError, errorMessage } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import {
  HostRegistry,
  MongoStore,
  type RfbootConfig,
  listConfiguredVms,
  loadConfig,
  type DomainInfo,
  type HostProbe,
  type VmRecord,
} from "../../provisioner/index.js";
import { age, renderTable } from "../table.js";
import { hostRows, reportedText } from "./hosts.js";

/** StatusRow is one datapath in `status --json`. */
export interface StatusRow {
  dpid: string;
  switch: "connected" | "disconnected" | "never";
  peer?: string;
  vm?: string;
  host?: string;
  state: string;
  domain?: string;
  joinedAt?: Date;
  startedAt?: Date;
  readyAt?: Date;
  leftAt?: Date;
  lastError?: string;
  cpuSeconds?: number;
  memoryMiB?: number;
  /** prewarm is the VM's prewarm save image, when it has one: when it was saved, where, its size. */
  prewarm?: { at: Date; host: string; imageMiB: number };
  /** prewarming: a prewarm boots the VM now (since when, on which host): its state is that boot's. */
  prewarming?: { since: Date; host: string };
}

function row(
  rec: VmRecord | undefined,
  dpidHex: string,
  vmName: string | undefined,
  live?: DomainInfo,
): StatusRow {
  const sw = rec?.switch;
  return {
    dpid: dpidHex,
    switch: sw ? (sw.connected ? "connected" : "disconnected") : "never",
    ...(sw?.peer ? { peer: sw.peer } : {}),
    ...(rec?.vmName || vmName ? { vm: rec?.vmName ?? vmName } : {}),
    ...(rec?.host ? { host: rec.host } : {}),
    state: rec?.state ?? "not joined",
    ...(live ? { domain: live.state } : {}),
    ...(rec?.joinedAt ? { joinedAt: rec.joinedAt } : {}),
    ...(rec?.startedAt ? { startedAt: rec.startedAt } : {}),
    ...(rec?.readyAt ? { readyAt: rec.readyAt } : {}),
    ...(rec?.leftAt ? { leftAt: rec.leftAt } : {}),
    ...(rec?.lastError ? { lastError: `${rec.lastError.kind}: ${rec.lastError.message}` } : {}),
    ...(live?.cpuTimeNs !== undefined ? { cpuSeconds: Number(live.cpuTimeNs) / 1e9 } : {}),
    ...(live?.rssKiB !== undefined
      ? { memoryMiB: Math.round(live.rssKiB / 1024) }
      : live?.memoryKiB !== undefined
        ? { memoryMiB: Math.round(live.memoryKiB / 1024) }
        : {}),
    ...(rec?.prewarm
      ? { prewarm: { at: rec.prewarm.at, host: rec.prewarm.host, imageMiB: rec.prewarm.imageMiB } }
      : {}),
    ...(rec?.prewarming ? { prewarming: { since: rec.prewarming.since, host: rec.prewarming.host } } : {}),
  };
}

/** collectRows reads the records and (with `live`) the hosts' domains, and makes one row per datapath. */
export async function collectRows(
  config: RfbootConfig,
  store: Pick<MongoStore, "listRecords">,
  live: HostRegistry | undefined,
  onProbes?: (probes: HostProbe[]) => void,
): Promise<StatusRow[]> {
  let records: VmRecord[];
  try {
    records = await store.listRecords();
  } catch (e) {
    throw new RfbootError(`cannot read records from MongoDB at ${config.mongo.database}: ${errorMessage(e)}`);
  }
  const domains = new Map<string, DomainInfo>();
  if (live) {
    const probes = await live.probeAll();
    onProbes?.(probes);
    for (const p of probes) for (const d of p.domains) domains.set(`${p.name}/${d.name}`, d);
  }
  const byDpid = new Map(records.map((r) => [r.dpidHex, r]));
  const rows: StatusRow[] = [];
  for (const vm of listConfiguredVms(config)) {
    const rec = byDpid.get(vm.dpidHex);
    byDpid.delete(vm.dpidHex);
    rows.push(row(rec, vm.dpidHex, vm.name, rec?.host ? domains.get(`${rec.host}/${vm.name}`) : undefined));
  }
  for (const rec of byDpid.values()) {
    rows.push(
      row(
        rec,
        rec.dpidHex,
        rec.vmName,
        rec.host && rec.vmName ? domains.get(`${rec.host}/${rec.vmName}`) : undefined,
      ),
    );
  }
  return rows;
}

/**
 * stateText is a row's STATE cell: the state, and for a VM with a prewarm image the image's age, host and
 * size (`prewarmed 12m ago on h1, 128 MiB`), so the operator sees how old the image a join would restore is.
 * A VM booting for prewarm says so first (`prewarming on h1 for 8s (running)`): its `running` is not a
 * switch's.
 */
export function stateText(r: StatusRow, now = Date.now()): string {
  const b = r.prewarming;
  if (b) return `prewarming on ${b.host} for ${age(b.since, now)} (${r.state})`;
  const p = r.prewarm;
  if (!p) return r.state;
  const image = `${age(p.at, now)} ago on ${p.host}, ${p.imageMiB} MiB`;
  return r.state === "prewarmed" ? `prewarmed ${image}` : `${r.state} (prewarm image ${image})`;
}

/**
 * renderPrewarm is the prewarm summary after the table: per host, the VMs holding a prewarm image and their
 * images' total against the disk budget (`policies.prewarm.diskMiB`). Shown when prewarm is on, or when
 * images are left on disk while it is off; empty otherwise.
 */
export function renderPrewarm(config: RfbootConfig, rows: readonly StatusRow[]): string {
  const { enabled, diskMiB } = config.policies.prewarm;
  const perHost = new Map<string, { vms: number; mib: number }>(
    enabled ? config.hosts.map((h) => [h.name, { vms: 0, mib: 0 }]) : [],
  );
  for (const r of rows) {
    if (!r.prewarm) continue;
    const h = perHost.get(r.prewarm.host) ?? { vms: 0, mib: 0 };
    h.vms += 1;
    h.mib += r.prewarm.imageMiB;
    perHost.set(r.prewarm.host, h);
  }
  if (perHost.size === 0) return "";
  const budget = diskMiB === 0 ? ", no disk limit" : ` of ${diskMiB} MiB disk budget`;
  const parts = [...perHost].map(
    ([host, h]) => `${host} ${h.vms} ${h.vms === 1 ? "VM" : "VMs"} prewarmed, ${h.mib} MiB${budget}`,
  );
  return `\nprewarm ${enabled ? "on" : "off (images left on disk)"}: ${parts.join("; ")}\n`;
}

/** renderRows renders the status table (ages relative to `now`). */
export function renderRows(rows: readonly StatusRow[], now = Date.now()): string {
  return renderTable(
    [
      "DPID",
      "SWITCH",
      "VM",
      "HOST",
      "STATE",
      "DOMAIN",
      "JOINED",
      "STARTED",
      "READY",
      "CPU",
      "MEM",
      "LAST ERROR",
    ],
    rows.map((r) => [
      r.dpid,
      r.switch,
      r.vm ?? "-",
      r.host ?? "-",
      stateText(r, now),
      r.domain ?? "-",
      age(r.joinedAt, now),
      age(r.startedAt, now),
      age(r.readyAt, now),
      r.cpuSeconds !== undefined ? `${r.cpuSeconds.toFixed(1)}s` : "-",
      r.memoryMiB !== undefined ? `${r.memoryMiB}M` : "-",
      r.lastError ?? "",
    ]),
  );
}

/** renderHosts renders what each host reports of its capacity (after the datapaths' table). */
export function renderHosts(config: RfbootConfig, probes: readonly HostProbe[]): string {
  if (probes.length === 0) return "";
  const hosts = hostRows(config.hosts, probes, () => false);
  return (
    "\n" +
    renderTable(
      ["HOST", "REACHABLE", "VMS", "REPORTED CAPACITY"],
      hosts.map((h) => [h.name, h.reachable ? "yes" : "NO", `${h.running}/${h.maxVms}`, reportedText(h)]),
    )
  );
}

/** changeKey is what makes a new table worth printing when not on a terminal: not the CPU time ticking. */
export function changeKey(rows: readonly StatusRow[]): string {
  return JSON.stringify(rows.map(({ cpuSeconds: _c, memoryMiB: _m, ...r }) => r));
}

/** CLEAR moves the cursor home and clears the screen (ECMA-48 CUP and ED), for a redraw in place. */
export const CLEAR = "\x1b[H\x1b[2J";

interface StatusFlags {
  config: string;
  json?: boolean;
  live: boolean;
  watch?: boolean;
  interval: string;
}

/** registerStatus adds `rfboot status --config FILE [--json] [--watch]`. */
export function registerStatus(program: Command): void {
  program
    .command("status")
    .description(
      "show each datapath: switch state, VM, host, state (a VM booting for prewarm\n" +
        "says so; a prewarm image's age and size), ages, last error, live CPU/memory;\n" +
        "with policies.prewarm on, the prewarm images per host against the disk budget;\n" +
        "--watch reads again every few seconds (redrawn in place on a terminal, printed\n" +
        "on each change otherwise)",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("--json", "print JSON (one array) instead of a table")
    .option("--no-live", "do not ask libvirt for live figures")
    .option("-w, --watch", "keep reading until Ctrl-C")
    .option("--interval <seconds>", "--watch: seconds between reads", "2")
    .action(async (opts: StatusFlags) => {
      const interval = Number(opts.interval);
      if (!Number.isFinite(interval) || interval <= 0)
        throw new UsageError(
          `--interval: expected a positive number of seconds, got ${JSON.stringify(opts.interval)}`,
        );
      const config = await loadConfig(opts.config);
      const store = await MongoStore.open({
        uri: config.mongo.uri,
        database: config.mongo.database,
        prefix: `${config.mongo.collectionPrefix}_`,
        logger: silentLogger,
        serverSelectionTimeoutMS: 3000,
      });
      const reg = opts.live ? new HostRegistry({ hosts: config.hosts }) : undefined;
      // The JSON output stays one array of datapaths (each with its prewarm image, which the text's summary
      // adds up); the hosts' figures are `rfboot hosts --json`.
      let probes: HostProbe[] = [];
      const show = (rows: StatusRow[]) =>
        process.stdout.write(
          opts.json
            ? JSON.stringify(rows, null, opts.watch ? 0 : 2) + "\n"
            : renderRows(rows) + renderPrewarm(config, rows) + renderHosts(config, probes),
        );
      const read = () => collectRows(config, store, reg, (p) => (probes = p));
      try {
        if (!opts.watch) {
          show(await read());
          return;
        }
        await watch(config, read, interval, opts.json === true, show);
      } finally {
        await store.close(500).catch(() => undefined);
        await reg?.dispose();
      }
    });
}

/**
 * watch reads every `interval` seconds until SIGINT/SIGTERM. On a terminal each read redraws the screen (the
 * ages move on); otherwise a table (or JSON line) is printed only when something changed. A failed read is
 * shown, and the next one tried.
 */
async function watch(
  config: RfbootConfig,
  read: () => Promise<StatusRow[]>,
  interval: number,
  json: boolean,
  show: (rows: StatusRow[]) => void,
): Promise<void> {
  const tty = process.stdout.isTTY === true && !json;
  let stop = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    stop = true;
    wake?.();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let last = "";
  try {
    while (!stop) {
      let text: string | undefined;
      try {
        const rows = await read();
        const key = changeKey(rows);
        if (tty) {
          process.stdout.write(
            `${CLEAR}rfboot status: ${config.mongo.database}, every ${interval}s (Ctrl-C to quit)  ${new Date().toISOString()}\n\n`,
          );
          show(rows);
        } else if (key !== last) {
          if (last !== "" && !json) process.stdout.write("\n");
          show(rows);
        }
        last = key;
      } catch (e) {
        text = errorMessage(e);
        if (tty) process.stdout.write(`${CLEAR}rfboot status: ${text}\n`);
        else process.stderr.write(`rfboot: ${text}\n`);
      }
      if (stop) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval * 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
