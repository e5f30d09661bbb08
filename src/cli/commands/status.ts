/**
 * `rfboot status`: one line per datapath from MongoDB, with live CPU and memory figures from libvirt, then
 * (live) one line per host with what it reports of its capacity.
 */
import type { Command } from "commander";
import { RfbootError, errorMessage } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import {
  HostRegistry,
  MongoStore,
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
  };
}

/** registerStatus adds `rfboot status --config FILE [--json]`. */
export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("show each datapath: switch state, VM, host, state, ages, last error, live CPU/memory")
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("--json", "print JSON (one array) instead of a table")
    .option("--no-live", "do not ask libvirt for live figures")
    .action(async (opts: { config: string; json?: boolean; live: boolean }) => {
      const config = await loadConfig(opts.config);
      const store = await MongoStore.open({
        uri: config.mongo.uri,
        database: config.mongo.database,
        prefix: `${config.mongo.collectionPrefix}_`,
        logger: silentLogger,
        serverSelectionTimeoutMS: 3000,
      });
      let records: VmRecord[];
      try {
        records = await store.listRecords();
      } catch (e) {
        throw new RfbootError(
          `cannot read records from MongoDB at ${config.mongo.database}: ${errorMessage(e)}`,
        );
      } finally {
        await store.close(500).catch(() => undefined);
      }
      const live = new Map<string, DomainInfo>();
      let probes: HostProbe[] = [];
      if (opts.live) {
        const reg = new HostRegistry({ hosts: config.hosts });
        probes = await reg.probeAll();
        for (const p of probes) for (const d of p.domains) live.set(`${p.name}/${d.name}`, d);
        await reg.dispose();
      }
      const byDpid = new Map(records.map((r) => [r.dpidHex, r]));
      const rows: StatusRow[] = [];
      for (const vm of listConfiguredVms(config)) {
        const rec = byDpid.get(vm.dpidHex);
        byDpid.delete(vm.dpidHex);
        rows.push(row(rec, vm.dpidHex, vm.name, rec?.host ? live.get(`${rec.host}/${vm.name}`) : undefined));
      }
      for (const rec of byDpid.values()) {
        rows.push(
          row(
            rec,
            rec.dpidHex,
            rec.vmName,
            rec.host && rec.vmName ? live.get(`${rec.host}/${rec.vmName}`) : undefined,
          ),
        );
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        renderTable(
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
            r.state,
            r.domain ?? "-",
            age(r.joinedAt),
            age(r.startedAt),
            age(r.readyAt),
            r.cpuSeconds !== undefined ? `${r.cpuSeconds.toFixed(1)}s` : "-",
            r.memoryMiB !== undefined ? `${r.memoryMiB}M` : "-",
            r.lastError ?? "",
          ]),
        ),
      );
      if (probes.length === 0) return;
      // The hosts' own capacity figures (the JSON output stays one array of datapaths: `rfboot hosts --json`).
      const hosts = hostRows(config.hosts, probes, () => false);
      process.stdout.write(
        "\n" +
          renderTable(
            ["HOST", "REACHABLE", "VMS", "REPORTED CAPACITY"],
            hosts.map((h) => [
              h.name,
              h.reachable ? "yes" : "NO",
              `${h.running}/${h.maxVms}`,
              reportedText(h),
            ]),
          ),
      );
    });
}
