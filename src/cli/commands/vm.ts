/**
 * `rfboot vm list|start|stop|remove NAME --config FILE`: operate rfboot's VMs directly through libvirt, as the
 * daemon would (same placement, XML, disk preparation and lifecycle), for operators and debugging. `start`
 * and `remove` keep MongoDB as the daemon does: `start` writes the VM's `rfconfig` rows before the VM starts
 * and its `<prefix>_vms` record after; `remove` deletes that record and exactly the rows rfboot derives for
 * the VM. `list` and `stop` do not touch MongoDB: the daemon's records catch up through libvirt events.
 */
import type { Command } from "commander";
import { RfbootError, UsageError, errorMessage } from "../../common/errors.js";
import { redactUri, silentLogger } from "../../common/log.js";
import {
  configHash,
  DataPlane,
  dataPlaneFingerprint,
  diskPlanFrom,
  findConfiguredVm,
  HostRegistry,
  hostsFor,
  listConfiguredVms,
  loadConfig,
  MongoStore,
  ovsVsctl,
  place,
  planOnHost,
  rfconfigRows,
  VirshShellRunner,
  type HostConfig,
  type HostProbe,
  type LeaveAction,
  type RecordPatch,
  type ResolvedVm,
  type RfbootConfig,
  type WriteOutcome,
} from "../../provisioner/index.js";
import { buildDomainXml } from "../../xmlgen/index.js";

/** VmRow is one line of `rfboot vm list`. */
export interface VmRow {
  name: string;
  host: string | null;
  state: string;
  uuid: string | null;
  managedSave: boolean;
  configured: boolean;
  dpid: string | null;
  cpuSeconds: number | null;
  memoryMiB: number | null;
}

/** formatTable renders rows as aligned columns (first row = header). */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "))
      .join("\n") + "\n"
  );
}

/** registryFor builds the host registry of a config, using persistent virsh shells. */
export function registryFor(config: RfbootConfig, shell: VirshShellRunner): HostRegistry {
  return new HostRegistry({ hosts: config.hosts, run: shell.run });
}

/** vmRows joins configured VMs with what the probes found (configured first, then, with `all`, the rest). */
export function vmRows(config: RfbootConfig, probes: readonly HostProbe[], all: boolean): VmRow[] {
  const configured = new Map(listConfiguredVms(config).map((v) => [v.name, v]));
  const rows: VmRow[] = [];
  const seen = new Set<string>();
  for (const p of probes) {
    for (const d of p.domains) {
      const vm = configured.get(d.name);
      if (!vm && !all) continue;
      seen.add(d.name);
      rows.push({
        name: d.name,
        host: p.name,
        state: d.state,
        uuid: d.uuid,
        managedSave: d.managedSave,
        configured: vm !== undefined,
        dpid: vm ? vm.dpidHex : null,
        cpuSeconds: d.cpuTimeNs !== undefined ? Number(d.cpuTimeNs) / 1e9 : null,
        memoryMiB: d.memoryKiB !== undefined ? Math.round(d.memoryKiB / 1024) : null,
      });
    }
  }
  for (const vm of configured.values()) {
    if (seen.has(vm.name)) continue;
    rows.push({
      name: vm.name,
      host: null,
      state: "undefined",
      uuid: null,
      managedSave: false,
      configured: true,
      dpid: vm.dpidHex,
      cpuSeconds: null,
      memoryMiB: null,
    });
  }
  return rows.sort((a, b) => Number(b.configured) - Number(a.configured) || a.name.localeCompare(b.name));
}

function configuredVm(config: RfbootConfig, name: string): ResolvedVm {
  const vm = findConfiguredVm(config, name);
  if (!vm) {
    const names = listConfiguredVms(config).map((v) => v.name);
    throw new UsageError(
      `no VM named ${JSON.stringify(name)} in ${config.source}` +
        (names.length ? ` (configured: ${names.join(", ")})` : " (no datapaths are configured)"),
    );
  }
  return vm;
}

function hostOf(config: RfbootConfig, name: string): HostConfig {
  const h = config.hosts.find((x) => x.name === name);
  if (!h) throw new RfbootError(`host ${name} is not configured`);
  return h;
}

async function withRegistry<T>(
  file: string,
  fn: (c: RfbootConfig, r: HostRegistry) => Promise<T>,
): Promise<T> {
  const config = await loadConfig(file);
  const shell = new VirshShellRunner();
  const reg = registryFor(config, shell);
  try {
    return await fn(config, reg);
  } finally {
    await reg.dispose();
    await shell.close();
  }
}

/** locateDefined probes every host and returns those where the domain is defined (unreachable ones skipped). */
async function locateDefined(
  reg: HostRegistry,
  name: string,
): Promise<{ probes: HostProbe[]; hosts: string[] }> {
  const probes = await reg.probeAll();
  return { probes, hosts: probes.filter((p) => p.domains.some((d) => d.name === name)).map((p) => p.name) };
}

/** RECORDS_WAIT_MS: how long a command waits for MongoDB to confirm its writes before it says they failed. */
const RECORDS_WAIT_MS = 5_000;

/** openStore opens the config's MongoDB store for one command: no state file (that one is the daemon's). */
function openStore(config: RfbootConfig): Promise<MongoStore> {
  return MongoStore.open({
    uri: config.mongo.uri,
    database: config.mongo.database,
    prefix: `${config.mongo.collectionPrefix}_`,
    logger: silentLogger,
    serverSelectionTimeoutMS: 2_000,
    rfconfigConflicts: config.policies.rfconfigConflicts,
  });
}

/** mongoAt names the MongoDB a config uses, credentials hidden. */
function mongoAt(config: RfbootConfig): string {
  return `MongoDB at ${redactUri(config.mongo.uri)} (database ${config.mongo.database})`;
}

/**
 * confirmed runs a store write and resolves true once MongoDB confirmed it (and every write before it), else
 * why not. The command's outbox dies with the process, so a write it only queued is a write that failed.
 */
async function confirmed(store: MongoStore, write: () => Promise<WriteOutcome>): Promise<true | string> {
  if ((await write()) === "written" || (await store.drain(RECORDS_WAIT_MS))) return true;
  return store.stats().online
    ? `not confirmed within ${RECORDS_WAIT_MS / 1000} s`
    : "MongoDB is unreachable; check that the server runs and the URI is right";
}

/**
 * startVm places (stable: where it is defined, else pin, else least loaded) and ensures the VM runs. With a
 * store, it first writes the VM's `rfconfig` rows as the daemon does (rfclient registers once, at boot, so
 * the rows must be there before the VM starts; a VM started without them stays unmatched) and refuses to
 * start the VM when MongoDB does not confirm them; then it keeps the record as the daemon's ensure does.
 */
async function startVm(
  config: RfbootConfig,
  reg: HostRegistry,
  name: string,
  pin: string | undefined,
  store: MongoStore | undefined,
): Promise<string> {
  const vm = configuredVm(config, name);
  const probes = await reg.probeAll();
  const candidates = new Set(hostsFor(config, vm).map((h) => h.name));
  const isOurs = (n: string) => findConfiguredVm(config, n) !== undefined;
  const memOf = (n: string) => findConfiguredVm(config, n)?.memoryMiB ?? 0;
  const decision = place(
    { vm: vm.name, memoryMiB: vm.memoryMiB, pin: pin ?? vm.hostPin },
    reg.capacities().filter((c) => candidates.has(c.name)),
    reg.placements(isOurs, memOf),
  );
  const unreachable = probes
    .filter((p) => !p.reachable)
    .map((p) => `${p.name} (${p.error ?? "unreachable"})`);
  const host = hostOf(config, decision.host);
  // The files the domain reads, where this host has them (its pool's volumes; uploaded if allowed).
  const { plan, disk } = await planOnHost(vm, host, reg.storage(host.name));
  const uuid = plan.description.uuid ?? "";
  const rows = rfconfigRows(vm);
  const patch = (p: RecordPatch) => void store?.patchRecord(vm.dpidHex, p).catch(() => undefined);
  if (store) {
    let done: true | string;
    try {
      await store.ensureSetup();
      done = await confirmed(store, () => store.upsertRfconfigRows(rows));
    } catch (err) {
      done = errorMessage(err);
    }
    if (done !== true) {
      throw new RfbootError(
        `${vm.name} was not started: ${mongoAt(config)} did not confirm its ${rows.length} rfconfig ` +
          `row(s) (${done}); rerun once MongoDB is reachable, or pass --no-records to start it without ` +
          `them (rfserver then maps none of its ports)`,
      );
    }
    patch({
      vmName: vm.name,
      vmId: vm.vmId.toString(10),
      vmMac: vm.vmMac,
      hypervisor: vm.hypervisor,
      host: host.name,
      uuid,
    });
  }
  // As the daemon does: on a data-plane host the NICs' patch pairs first, and their tags in the domain.
  const placed = await new DataPlane({ ovs: ovsVsctl() }).forPlacement(config, vm, host, plan.description);
  const fingerprint = dataPlaneFingerprint(configHash(vm), placed.links);
  // As the daemon does: a domain the record says was defined from this very config is not redefined, so a
  // managed-save image (leave policy suspend, prewarm) is restored; a redefine removes it (it holds the old
  // definition, which libvirt would bring back).
  const rec = store ? await store.getRecord(vm.dpidHex).catch(() => undefined) : undefined;
  const same = rec?.host === host.name && rec.uuid === uuid && rec.configFingerprint === fingerprint;
  const r = await reg.manager(host.name).ensureRunning({
    name: vm.name,
    uuid,
    redefine: !same,
    xml: buildDomainXml(placed.description),
    ...(disk ? { disk } : {}),
    onStarting: () => patch({ state: "starting" }),
    onDefined: (at) => patch({ definedAt: at, configFingerprint: fingerprint }),
  });
  if (store) {
    patch({
      state: "running",
      host: host.name,
      lastError: null,
      attempts: 0,
      ...(r.startedAt ? { startedAt: r.startedAt } : {}),
      // A prewarm image is used (restored) or gone (removed by the redefine) once the domain runs.
      ...(rec?.prewarm ? { prewarm: null } : {}),
    });
    void store
      .logEvent({
        dpid: vm.dpidHex,
        vm: vm.name,
        kind: "boot",
        detail: `${r.action} on ${host.name} (rfboot vm start)`,
      })
      .catch(() => undefined);
  }
  const moved = decision.previous ? ` (moved from ${decision.previous})` : "";
  const warn = unreachable.length ? `\nwarning: unreachable hosts: ${unreachable.join("; ")}` : "";
  const kept = store
    ? `\n${vm.name}: ${rows.length} rfconfig row(s) in ${config.mongo.database}.rfconfig` +
      ` (vm_id ${rows[0]?.vm_id ?? vm.vmId.toString(10)})`
    : "";
  return (
    `${vm.name}: ${r.action}${r.restored ? " (restored from saved state)" : ""} on ${host.name}` +
    ` [placement: ${decision.reason}${moved}] in ${r.timings.totalMs.toFixed(0)} ms${kept}${warn}\n`
  );
}

/**
 * removeRecords deletes what rfboot keeps in MongoDB for a removed VM and returns the line to print. Only
 * rows rfboot wrote are deleted: rows carry no writer's mark, so the VM's record is the evidence. A record
 * of this VM with a host means rfboot (the daemon or `vm start`) got as far as writing the rows, which both
 * do before they write the host; without one, the rows may be RouteFlow's own loader's and are left alone.
 * The rows go first and the record last, so a rerun after a failure still finds the evidence.
 */
async function removeRecords(
  store: MongoStore,
  config: RfbootConfig,
  vm: ResolvedVm,
): Promise<RemovedRecords> {
  const notRemoved = (what: string, err: unknown) =>
    new RfbootError(`${what} (${err instanceof Error ? errorMessage(err) : String(err)})`);
  const vms = `${config.mongo.collectionPrefix}_vms/${vm.dpidHex}`;
  const rec = await store
    .getRecord(vm.dpidHex)
    .catch((err: unknown) =>
      Promise.reject(notRemoved("its record and rfconfig rows were not removed", err)),
    );
  const ours = rec !== undefined && (rec.vmName === undefined || rec.vmName === vm.name);
  const rows = rfconfigRows(vm);
  const wroteRows = ours && rec.vmName === vm.name && rec.host !== undefined;
  const rowsDeleted = wroteRows
    ? await store
        .deleteRfconfigRows(rows)
        .catch((err: unknown) =>
          Promise.reject(notRemoved(`its rfconfig rows were not (all) removed, nor its record ${vms}`, err)),
        )
    : 0;
  let record: string;
  if (ours) {
    const done = await confirmed(store, () => store.deleteRecord(vm.dpidHex)).catch((err: unknown) =>
      errorMessage(err),
    );
    if (done !== true) {
      throw notRemoved(`its ${rowsDeleted} rfconfig row(s) are removed, but not its record ${vms}`, done);
    }
    record = `record ${vms} removed`;
    void store
      .logEvent({
        dpid: vm.dpidHex,
        vm: vm.name,
        kind: "remove",
        detail: `record and ${rowsDeleted} rfconfig row(s) removed (rfboot vm remove)`,
      })
      .catch(() => undefined);
  } else {
    record = rec ? `record ${vms} names VM ${rec.vmName ?? "?"}: left alone` : `no record ${vms}`;
  }
  const rowsLine = wroteRows
    ? `${rowsDeleted} of ${rows.length} rfconfig row(s) removed`
    : "rfconfig rows left alone (no record shows rfboot wrote them)";
  return {
    line: `${vm.name}: ${record}; ${rowsLine} (database ${config.mongo.database})\n`,
    removedAny: ours || rowsDeleted > 0,
  };
}

/** RemovedRecords is what removeRecords did: the line to print, and whether it removed anything. */
interface RemovedRecords {
  line: string;
  removedAny: boolean;
}

const LEAVE_MODES = ["shutdown", "destroy", "suspend"] as const;

/** registerVm adds `rfboot vm list|start|stop|remove`. */
export function registerVm(program: Command): void {
  const vm = program
    .command("vm")
    .description(
      "operate rfboot's VMs directly through libvirt: list, start, stop, remove (start and remove keep " +
        "MongoDB's rfconfig rows and records as the daemon does)",
    )
    .exitOverride();

  vm.command("list")
    .description("list configured VMs and where/how they run (live figures from virsh domstats)")
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--json", "print JSON instead of a table")
    .option("--all", "include domains rfboot does not manage")
    .exitOverride()
    .action(async (o: { config: string; json?: boolean; all?: boolean }) => {
      await withRegistry(o.config, async (config, reg) => {
        const probes = await reg.probeAll();
        const rows = vmRows(config, probes, o.all === true);
        if (o.json) {
          const down = probes.filter((p) => !p.reachable).map((p) => ({ host: p.name, error: p.error }));
          process.stdout.write(JSON.stringify({ vms: rows, unreachable: down }, null, 2) + "\n");
          return;
        }
        const table = [["NAME", "DPID", "HOST", "STATE", "SAVED", "CPU(s)", "MEM(MiB)", "UUID"]];
        for (const r of rows) {
          table.push([
            r.name + (r.configured ? "" : " *"),
            r.dpid ?? "-",
            r.host ?? "-",
            r.state,
            r.managedSave ? "yes" : "no",
            r.cpuSeconds === null ? "-" : r.cpuSeconds.toFixed(1),
            r.memoryMiB === null ? "-" : String(r.memoryMiB),
            r.uuid ?? "-",
          ]);
        }
        process.stdout.write(formatTable(table));
        for (const p of probes.filter((x) => !x.reachable)) {
          process.stdout.write(`warning: host ${p.name} unreachable: ${p.error}\n`);
        }
      });
    });

  vm.command("start <name>")
    .description(
      "place, define and start a configured VM (adopts a running one; resumes a paused or saved one). " +
        "First writes the VM's rfconfig rows to MongoDB as the daemon does (upserted: a rerun adds none) and " +
        "does not start the VM if MongoDB does not confirm them; then writes its record",
    )
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--host <name>", "start it on this host (a pin)")
    .option("--no-records", "do not touch MongoDB (no rfconfig rows, no record): for users without MongoDB")
    .exitOverride()
    .action(async (name: string, o: { config: string; host?: string; records: boolean }) => {
      await withRegistry(o.config, async (config, reg) => {
        if (o.host !== undefined && !config.hosts.some((h) => h.name === o.host)) {
          throw new UsageError(
            `--host ${o.host}: no such host (configured: ${config.hosts.map((h) => h.name).join(", ")})`,
          );
        }
        const vm = configuredVm(config, name);
        if (!o.records) {
          process.stdout.write(await startVm(config, reg, name, o.host, undefined));
          return;
        }
        const store = await openStore(config);
        try {
          process.stdout.write(await startVm(config, reg, name, o.host, store));
          if (!(await store.drain(RECORDS_WAIT_MS))) {
            throw new RfbootError(
              `${name} runs and its rfconfig rows are in, but ${mongoAt(config)} did not confirm its record ` +
                `${config.mongo.collectionPrefix}_vms/${vm.dpidHex}; rerun \`rfboot vm start ${name} ` +
                `--config ${o.config}\` once MongoDB is reachable (it adopts the running VM and writes the record)`,
            );
          }
        } finally {
          await store.close(0).catch(() => undefined);
        }
      });
    });

  vm.command("stop <name>")
    .description("stop a VM: shutdown (ACPI, destroy after a timeout), destroy, or suspend (managedsave)")
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--mode <mode>", `one of ${LEAVE_MODES.join(", ")}`, "shutdown")
    .exitOverride()
    .action(async (name: string, o: { config: string; mode: string }) => {
      if (!(LEAVE_MODES as readonly string[]).includes(o.mode)) {
        throw new UsageError(`--mode ${JSON.stringify(o.mode)} is not one of ${LEAVE_MODES.join(", ")}`);
      }
      await withRegistry(o.config, async (config, reg) => {
        configuredVm(config, name);
        const { hosts } = await locateDefined(reg, name);
        if (hosts.length === 0) throw new RfbootError(`${name} is not defined on any reachable host`);
        for (const h of hosts) {
          const out = await reg.manager(h).leave(name, o.mode as LeaveAction);
          process.stdout.write(`${name}: ${out} on ${h}\n`);
        }
      });
    });

  vm.command("remove <name>")
    .description(
      "destroy and undefine a VM (with its saved state), delete its rfboot-made disk, then delete its record " +
        "and exactly the rfconfig rows rfboot wrote for it (other rows stay). If MongoDB cannot be updated, " +
        "the domain is still removed and the command exits 1 saying what to rerun",
    )
    .requiredOption("--config <file>", "rfboot config (YAML or JSON)")
    .option("--keep-disk", "keep the VM's overlay/copy")
    .option("--keep-records", "keep the VM's record and rfconfig rows in MongoDB (do not touch MongoDB)")
    .exitOverride()
    .action(async (name: string, o: { config: string; keepDisk?: boolean; keepRecords?: boolean }) => {
      await withRegistry(o.config, async (config, reg) => {
        const vmc = configuredVm(config, name);
        const { probes, hosts } = await locateDefined(reg, name);
        const down = probes.filter((p) => !p.reachable).map((p) => p.name);
        if (hosts.length === 0 && (o.keepRecords || down.length > 0)) {
          // An unreachable host may still run it: its rows must stay while it might.
          const kept = o.keepRecords ? "" : `; its record and rfconfig rows are left alone`;
          const where = down.length > 0 ? ` (unreachable: ${down.join(", ")})` : "";
          throw new RfbootError(`${name} is not defined on any reachable host${where}${kept}`);
        }
        for (const h of hosts) {
          const plan = vmc.plan(hostOf(config, h));
          const disk = o.keepDisk || !plan.disk ? undefined : diskPlanFrom(plan.disk);
          await reg.manager(h).remove(name, disk);
          const what = disk && disk.kind !== "none" ? ` (disk volume ${disk.path} deleted)` : "";
          process.stdout.write(`${name}: removed from ${h}${what}\n`);
        }
        if (config.hosts.some((h) => h.dataPlane)) {
          const n = await new DataPlane({ ovs: ovsVsctl() }).unlink(name);
          if (n > 0) process.stdout.write(`${name}: ${n} data-plane patch port(s) removed\n`);
        }
        if (o.keepRecords) return;
        const failed = (err: unknown) =>
          new RfbootError(
            `${name}: ${hosts.length > 0 ? "the domain is removed, but " : ""}${errorMessage(err)} in ` +
              `${mongoAt(config)}; once it is reachable, rerun \`rfboot vm remove ${name} --config ` +
              `${o.config}\` (with the domain gone, it removes only what is left in MongoDB)`,
          );
        const store = await openStore(config).catch((err: unknown) =>
          Promise.reject(failed(`its record and rfconfig rows were not removed (${errorMessage(err)})`)),
        );
        try {
          const removed = await removeRecords(store, config, vmc).catch((err: unknown) =>
            Promise.reject(failed(err)),
          );
          if (hosts.length === 0 && !removed.removedAny) {
            throw new RfbootError(
              `${name} is not defined on any host and MongoDB holds nothing rfboot wrote for it: nothing to remove`,
            );
          }
          if (hosts.length === 0) process.stdout.write(`${name}: not defined on any host\n`);
          process.stdout.write(removed.line);
          if (!(await store.drain(RECORDS_WAIT_MS))) {
            process.stderr.write(`rfboot: warning: the "remove" event for ${name} was not written\n`);
          }
        } finally {
          await store.close(0).catch(() => undefined);
        }
      });
    });
}
