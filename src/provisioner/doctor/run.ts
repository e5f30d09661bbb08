/** One doctor run: every check, in parallel where independent, inside one time budget; and its report. */
import { redactUri } from "../../common/log.js";
import {
  checkHost,
  checkMongo,
  checkOvs,
  checkSystem,
  Deadline,
  lxcDriverInstalled,
  systemFacts,
  type HostCheckOptions,
} from "./checks.js";
import type { DoctorTargets } from "./targets.js";
import type { Check, DoctorSeams } from "./types.js";

/** DEFAULT_BUDGET_MS bounds a whole run, so that a hung libvirtd or database cannot hang doctor. */
export const DEFAULT_BUDGET_MS = 25_000;

/** DoctorOptions configure runDoctor. */
export interface DoctorOptions extends HostCheckOptions {
  targets: DoctorTargets;
  seams: DoctorSeams;
  budgetMs?: number;
  /** arch names the machine for finding libvirt's driver modules (default process.arch). */
  arch?: string;
}

/** runDoctor runs every check and returns them in report order: hosts, system, Open vSwitch, MongoDB. */
export async function runDoctor(o: DoctorOptions): Promise<Check[]> {
  const { seams, targets } = o;
  const deadline = new Deadline(seams.clock.mono, o.budgetMs ?? DEFAULT_BUDGET_MS);
  const facts = systemFacts(seams, deadline);
  const lxcHost = targets.hosts.some((h) => h.needsLxc);
  const hosts = Promise.all(targets.hosts.map((h) => checkHost(seams, h, deadline, facts, o)));
  const system = facts.then(async (f) =>
    checkSystem(
      seams,
      f,
      !lxcHost && (await lxcDriverInstalled(seams.fs, o.arch ?? process.arch)),
      targets.openflowMode,
    ),
  );
  const ovs = checkOvs(seams, targets.bridges, deadline);
  const mongo = checkMongo(
    seams,
    targets.mongoUri,
    redactUri(targets.mongoUri),
    targets.leaseSlackMs,
    deadline,
  );
  const [h, s, v, m] = await Promise.all([hosts, system, ovs, mongo]);
  return [...h.flat(), ...s, ...v, ...m];
}

const LABEL = { ok: "ok  ", warn: "warn", fail: "FAIL" } as const;

/** formatReport renders one line per check (status, id, target, what was found, the fix) and a verdict line. */
export function formatReport(checks: readonly Check[]): string {
  const lines = checks.map((c) => {
    const ms = c.ms !== undefined ? ` [${c.ms} ms]` : "";
    const fix = c.status !== "ok" && c.fix ? ` -> fix: ${c.fix}` : "";
    return `${LABEL[c.status]} ${c.id} ${c.target}: ${c.detail}${ms}${fix}`;
  });
  const blocking = checks.filter((c) => c.blocking);
  const warns = checks.filter((c) => c.status === "warn").length;
  lines.push(
    blocking.length > 0
      ? `doctor: ${blocking.length} blocking problem(s): ${blocking.map((c) => `${c.id} ${c.target}`).join(", ")}`
      : `doctor: nothing blocks rfboot here${warns > 0 ? ` (${warns} warning(s))` : ""}`,
  );
  return lines.join("\n") + "\n";
}
