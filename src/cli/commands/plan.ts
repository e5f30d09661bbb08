/**
 * `rfboot plan`: what would happen for each configured datapath. libvirt is only read: each host's storage
 * pool is looked at for the files its VMs' domains read (base images, kernels, initrds), so a missing one
 * shows before any switch joins. With `policies.prewarm` on, the prewarm planner's order, left-out VMs and
 * per-host budgets follow.
 */
import type { Command } from "commander";
import { errorMessage } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { buildDomainXml } from "../../xmlgen/index.js";
import {
  HostRegistry,
  MongoStore,
  VirshShellRunner,
  hostsFor,
  inspectHostStorage,
  listConfiguredVms,
  loadConfig,
  place,
  prewarmPlan,
  rfconfigRows,
  type KnownPlacement,
  type PrewarmPlan,
  type RfbootConfig,
  type VmRecord,
} from "../../provisioner/index.js";
import { renderTable } from "../table.js";

/** PlanRow is one configured datapath in `plan --json`. */
export interface PlanRow {
  dpid: string;
  vm: string;
  vmId: string;
  hypervisor: string;
  host?: string;
  placement: string;
  action: string;
  dataPorts: number;
  rfconfigRows: number;
  disk: string;
  boot: string;
  /** storage: what the host's pool lacks for this VM (absent: nothing, or not checked). */
  storage?: string[];
  error?: string;
}

/** HostStorageRow is one host's storage in `plan --json`. */
export interface HostStorageRow {
  host: string;
  pool: string;
  images: "path" | "pool";
  state: string;
  problems: string[];
}

/** HostStorageCheck is a host's row plus its problems per VM name. */
interface HostStorageCheck {
  row: HostStorageRow;
  byVm: Readonly<Record<string, readonly string[]>>;
}

/** checkStorage reads every host's storage (read-only); a host that does not answer is reported so. */
async function checkStorage(config: RfbootConfig): Promise<HostStorageCheck[]> {
  const shell = new VirshShellRunner({ defaultTimeoutMs: 10_000 });
  const reg = new HostRegistry({ hosts: config.hosts, run: shell.run });
  try {
    return await Promise.all(
      config.hosts.map(async (h): Promise<HostStorageCheck> => {
        const base = { host: h.name, pool: h.pool, images: h.images };
        try {
          const r = await inspectHostStorage(config, h, reg.storage(h.name));
          return { row: { ...base, state: r.poolDetail, problems: [...r.problems] }, byVm: r.problemsByVm };
        } catch (e) {
          return { row: { ...base, state: `not checked: ${errorMessage(e)}`, problems: [] }, byVm: {} };
        }
      }),
    );
  } finally {
    await reg.dispose();
    await shell.close();
  }
}

/**
 * planPrewarm asks the prewarm planner what `policies.prewarm` would do with the configured VMs: placed as a
 * join would place them (the config's capacities; the records' placements and images), none whose switch the
 * records show connected. Undefined when prewarm is off.
 */
export function planPrewarm(
  config: RfbootConfig,
  records: ReadonlyMap<string, VmRecord>,
): PrewarmPlan | undefined {
  if (!config.policies.prewarm.enabled) return undefined;
  const capacities = config.hosts.map((h) => ({
    name: h.name,
    maxVms: h.maxVms,
    memoryMiB: h.memoryMiB ?? Number.POSITIVE_INFINITY,
    reachable: true,
  }));
  const connected = new Set([...records.values()].filter((r) => r.switch?.connected).map((r) => r.dpidHex));
  return prewarmPlan(config, capacities, records, connected);
}

/**
 * joinAction says what a join of the VM's switch would do, from its record (undefined: never seen). A VM a
 * prewarm boots now is adopted as it runs: the prewarm leaves it to the join instead of saving it.
 */
export function joinAction(rec: VmRecord | undefined): string {
  if (!rec) return "define+start on join";
  if (rec.prewarming) return `adopt (booting for prewarm on ${rec.prewarming.host}: not saved then)`;
  if (rec.state === "running" || rec.state === "ready") return "adopt (already running)";
  if (rec.state === "suspended") return "resume from managedsave on join";
  if (rec.state === "prewarmed") return "restore the prewarm image on join";
  return "start on join";
}

const IMAGE_NOTE: Record<PrewarmPlan["order"][number]["image"], string> = {
  fresh: "kept: its image is of the current config",
  stale: "booted again: its image is of an older config",
  none: "booted, then saved",
  booting: "booting now, then saved",
};

/**
 * peakBootMiB is the most RAM the plan's boots can hold at once on `host`: its VMs still to boot (an image
 * stale or none), at most `concurrency` of them, the largest that fit the host's boot budget together.
 */
function peakBootMiB(plan: PrewarmPlan, host: string, concurrency: number, budgetMiB: number): number {
  const boots = plan.order
    .filter((o) => o.host === host && o.image !== "fresh")
    .map((o) => o.memoryMiB)
    .sort((a, b) => b - a);
  let held = 0;
  let n = 0;
  for (const m of boots) {
    if (n === concurrency) break;
    if (budgetMiB !== 0 && held + m > budgetMiB) continue;
    held += m;
    n += 1;
  }
  return held;
}

/**
 * renderPrewarmPlan renders a prewarm plan: the settings, one line per VM in prewarm order then the VMs left
 * out and why, then per host the RAM its prewarm boots may hold at once against the boot budget and the
 * images against the disk budget.
 */
export function renderPrewarmPlan(config: RfbootConfig, plan: PrewarmPlan): string {
  const p = config.policies.prewarm;
  const head =
    `prewarm: order ${p.order}, ${p.concurrency} at once; per host ` +
    (p.memoryMiB === 0 ? "booting VMs bounded by its capacity" : `${p.memoryMiB} MiB for booting VMs`) +
    ", " +
    (p.diskMiB === 0 ? "no limit on images" : `${p.diskMiB} MiB of images`) +
    "\n";
  const vms = renderTable(
    ["ORDER", "DPID", "VM", "HOST", "MEMORY", "IMAGE", "WHAT"],
    [
      ...plan.order.map((o, i) => [
        String(i + 1),
        o.dpidHex,
        o.vm,
        o.host,
        `${o.memoryMiB} MiB`,
        o.image,
        IMAGE_NOTE[o.image],
      ]),
      ...plan.leftOut.map((l) => ["-", l.dpidHex, l.vm, "-", "-", "-", `left out: ${l.reason}`]),
    ],
  );
  const hosts = renderTable(
    ["HOST", "BOOTING AT ONCE", "IMAGES", "IMAGE DISK"],
    Object.entries(plan.perHost).map(([host, h]) => [
      host,
      `${peakBootMiB(plan, host, p.concurrency, h.bootMemoryMiB)} MiB` +
        (h.bootMemoryMiB === 0 ? " (no limit)" : ` of ${h.bootMemoryMiB} MiB`),
      String(h.images),
      `${h.imagesMiB} MiB` + (h.diskBudgetMiB === 0 ? " (no limit)" : ` of ${h.diskBudgetMiB} MiB`),
    ]),
  );
  return `\n${head}${vms}\n${hosts}`;
}

/** registerPlan adds `rfboot plan --config FILE [--json] [--offline]`. */
export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description(
      "show what rfboot would do for each configured datapath (host, action, rfconfig\n" +
        "rows, disk, boot) and what each host's storage pool lacks (read only);\n" +
        "placements come from MongoDB's records when it is reachable; with\n" +
        "policies.prewarm on, which VMs would be prewarmed, in which order, on which\n" +
        "host, the budgets' use per host and which VMs they leave out",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("--json", "print JSON instead of a table")
    .option("--offline", "do not read MongoDB (plan from the config alone)")
    .option("--no-libvirt", "do not read the hosts' storage pools")
    .action(async (opts: { config: string; json?: boolean; offline?: boolean; libvirt: boolean }) => {
      const config = await loadConfig(opts.config);
      let records: VmRecord[] = [];
      let note = "";
      if (!opts.offline) {
        const store = await MongoStore.open({
          uri: config.mongo.uri,
          database: config.mongo.database,
          prefix: `${config.mongo.collectionPrefix}_`,
          logger: silentLogger,
          serverSelectionTimeoutMS: 2000,
        });
        try {
          records = await store.listRecords();
        } catch (e) {
          note = `MongoDB unreachable (${errorMessage(e)}): planned from the config alone`;
        } finally {
          await store.close(200).catch(() => undefined);
        }
      }
      const byDpid = new Map(records.map((r) => [r.dpidHex, r]));
      const vms = listConfiguredVms(config);
      const memOf = new Map(vms.map((v) => [v.name, v.memoryMiB]));
      const placements: KnownPlacement[] = records
        .filter((r) => r.vmName && r.host && r.state !== "missing")
        .map((r) => ({ vm: r.vmName!, host: r.host!, memoryMiB: memOf.get(r.vmName!) ?? 0 }));
      const rows: PlanRow[] = [];
      for (const vm of vms) {
        const rec = byDpid.get(vm.dpidHex);
        const candidates = new Set(hostsFor(config, vm).map((h) => h.name));
        const base = {
          dpid: vm.dpidHex,
          vm: vm.name,
          vmId: vm.vmMac,
          hypervisor: vm.hypervisor,
          dataPorts: vm.ports.length,
          rfconfigRows: rfconfigRows(vm).length,
        };
        try {
          const d = place(
            { vm: vm.name, memoryMiB: vm.memoryMiB, ...(vm.hostPin ? { pin: vm.hostPin } : {}) },
            config.hosts
              .filter((h) => candidates.has(h.name))
              .map((h) => ({
                name: h.name,
                maxVms: h.maxVms,
                memoryMiB: h.memoryMiB ?? Number.MAX_SAFE_INTEGER,
                reachable: true,
              })),
            placements,
          );
          placements.push({ vm: vm.name, host: d.host, memoryMiB: vm.memoryMiB });
          const host = config.hosts.find((h) => h.name === d.host)!;
          const plan = vm.plan(host);
          buildDomainXml(plan.description); // proves the XML builds (validation errors surface here)
          const action = joinAction(rec);
          const disk = plan.disk ? `${plan.disk.kind} ${plan.disk.path}` : "none";
          const b = plan.description.boot;
          const boot =
            b.type === "kernel" ? `kernel ${b.kernel}` : b.type === "init" ? `init ${b.init}` : b.type;
          rows.push({ ...base, host: d.host, placement: d.reason, action, disk, boot });
        } catch (e) {
          rows.push({
            ...base,
            placement: "-",
            action: "cannot place",
            disk: "-",
            boot: "-",
            error: errorMessage(e),
          });
        }
      }
      const storage = opts.libvirt ? await checkStorage(config) : [];
      for (const r of rows) {
        const missing = storage.find((c) => c.row.host === r.host)?.byVm[r.vm];
        if (missing && missing.length > 0) r.storage = [...missing];
      }
      const hosts = storage.map((c) => c.row);
      const prewarm = planPrewarm(config, byDpid);
      if (opts.json) {
        process.stdout.write(
          JSON.stringify(
            {
              rows,
              ...(opts.libvirt ? { hosts } : {}),
              ...(prewarm ? { prewarm } : {}),
              ...(note ? { note } : {}),
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      if (note) process.stderr.write(`rfboot: ${note}\n`);
      process.stdout.write(
        renderTable(
          ["DPID", "VM", "VM_ID", "HV", "HOST", "PLACEMENT", "ACTION", "PORTS", "ROWS", "DISK", "BOOT"],
          rows.map((r) => [
            r.dpid,
            r.vm,
            r.vmId,
            r.hypervisor,
            r.host ?? "-",
            r.placement,
            r.error ? `${r.action}: ${r.error}` : r.action,
            String(r.dataPorts),
            String(r.rfconfigRows),
            r.disk,
            r.boot,
          ]),
        ),
      );
      for (const h of hosts) {
        for (const p of h.problems) process.stdout.write(`storage ${h.host}: ${p}\n`);
        if (h.state.startsWith("not checked")) process.stdout.write(`storage ${h.host}: ${h.state}\n`);
      }
      if (prewarm) process.stdout.write(renderPrewarmPlan(config, prewarm));
    });
}
