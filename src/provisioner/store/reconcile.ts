/**
 * Start-up reconciliation, pure: compare the records in MongoDB with what every libvirt host really has
 * (`virsh list --all` per host) and say what to do. Each record and each domain appears in at most one
 * action, so applying the actions can neither duplicate a VM nor lose one.
 */
import type { RecordPatch, VmRecord, VmState } from "./types.js";

/** DomainListing is one line of `virsh list --all` on one host (state as virsh prints it under LC_ALL=C). */
export interface DomainListing {
  readonly host: string;
  readonly name: string;
  readonly uuid?: string;
  readonly state: string;
}

/** ConfiguredVm is a VM the configuration expects for a dpid. */
export interface ConfiguredVm {
  readonly dpidHex: string;
  readonly name: string;
}

/** ObservedState is a libvirt domain state folded into record terms. */
export type ObservedState = "running" | "stopped" | "suspended" | "failed";

/**
 * ReconcileAction is one decision, tagged by `type`:
 * - adopt: the record matches reality (same host, uuid, compatible state): take the VM over as is.
 * - repair: the domain exists but the record is wrong (state, host or uuid): apply `patch`.
 * - mark-missing: the record says a domain exists, but no listed host has it: apply `patch`.
 * - orphan: a domain named like a configured VM that has no record: create one with `patch`.
 * - duplicate: a second domain of an already matched VM on another host: reported, never adopted.
 * - conflict: two records name the same VM; the one with the lower dpid got the domain.
 * - unreachable: the record's host was not listed (down): nothing can be concluded, nothing is changed.
 */
export type ReconcileAction =
  | {
      readonly type: "adopt";
      readonly dpidHex: string;
      readonly name: string;
      readonly host: string;
      readonly uuid?: string;
      readonly observed?: ObservedState;
    }
  | {
      readonly type: "repair";
      readonly dpidHex: string;
      readonly name: string;
      readonly host: string;
      readonly uuid?: string;
      readonly observed?: ObservedState;
      readonly patch: RecordPatch;
      readonly reasons: readonly string[];
    }
  | {
      readonly type: "mark-missing";
      readonly dpidHex: string;
      readonly name: string;
      readonly patch: RecordPatch;
    }
  | {
      readonly type: "orphan";
      readonly dpidHex: string;
      readonly name: string;
      readonly host: string;
      readonly uuid?: string;
      readonly observed?: ObservedState;
      readonly patch: RecordPatch;
    }
  | {
      readonly type: "duplicate";
      readonly name: string;
      readonly host: string;
      readonly uuid?: string;
      readonly keptHost: string;
      readonly dpidHex: string;
    }
  | {
      readonly type: "conflict";
      readonly dpidHex: string;
      readonly name: string;
      readonly otherDpidHex: string;
    }
  | { readonly type: "unreachable"; readonly dpidHex: string; readonly name: string; readonly host: string };

/** observedState maps virsh's state text (`running`, `shut off`, `paused` ...) to record terms. */
export function observedState(virshState: string): ObservedState | undefined {
  switch (virshState.trim().toLowerCase()) {
    case "running":
    case "idle":
    case "blocked":
    case "in shutdown":
      return "running";
    case "shut off":
    case "shutoff":
      return "stopped";
    case "paused":
    case "pmsuspended":
    case "saved":
      return "suspended";
    case "crashed":
      return "failed";
    default:
      return undefined;
  }
}

/**
 * COMPATIBLE lists the record states that agree with an observed domain state. `ready` is a running VM whose
 * rfclient registered; `left` (switch gone) fits any state the leave policy may have produced; a suspended
 * or prewarmed record may show as `shut off` because `virsh list` does not show a managed-save image.
 */
const COMPATIBLE: Record<ObservedState, readonly VmState[]> = {
  running: ["running", "ready", "left"],
  stopped: ["stopped", "left", "suspended", "prewarmed", "failed"],
  suspended: ["suspended", "prewarmed", "left"],
  failed: ["failed", "left"],
};

/** expectsDomain tells whether a record claims that its domain was defined. */
function expectsDomain(r: VmRecord): boolean {
  if (r.state === "missing" || r.state === "joined" || r.state === "placing") return false;
  return (
    r.definedAt !== undefined ||
    ["starting", "running", "ready", "stopped", "suspended", "prewarmed"].includes(r.state)
  );
}

function rank(d: DomainListing, r: { host?: string; uuid?: string } | undefined): number {
  // Lower is better: the recorded uuid, then the recorded host, then a running domain.
  let score = 0;
  if (r?.uuid !== undefined && d.uuid !== r.uuid) score += 4;
  if (r?.host !== undefined && d.host !== r.host) score += 2;
  if (observedState(d.state) !== "running") score += 1;
  return score;
}

function pick(
  cands: DomainListing[],
  r: { host?: string; uuid?: string } | undefined,
): DomainListing | undefined {
  return [...cands].sort((a, b) => rank(a, r) - rank(b, r) || a.host.localeCompare(b.host))[0];
}

/**
 * reconcile compares `records` with the domains each reachable host lists (`domainsByHost`: a host absent from
 * it is unreachable) and the `configured` VMs (for orphans). Deterministic: actions are sorted by dpid.
 */
export function reconcile(
  records: readonly VmRecord[],
  domainsByHost:
    ReadonlyMap<string, readonly DomainListing[]> | Readonly<Record<string, readonly DomainListing[]>>,
  configured: readonly ConfiguredVm[] = [],
): ReconcileAction[] {
  const hosts = domainsByHost instanceof Map ? domainsByHost : new Map(Object.entries(domainsByHost));
  const byName = new Map<string, DomainListing[]>();
  for (const [host, list] of hosts) {
    for (const d of list) {
      const withHost = { ...d, host: d.host || host };
      byName.set(d.name, [...(byName.get(d.name) ?? []), withHost]);
    }
  }
  const claimedNames = new Map<string, string>(); // VM name -> dpid of the record that got its domain
  const actions: ReconcileAction[] = [];
  const duplicates = (name: string, kept: DomainListing, dpidHex: string) => {
    for (const d of byName.get(name) ?? []) {
      if (d === kept) continue;
      actions.push({
        type: "duplicate",
        name,
        host: d.host,
        keptHost: kept.host,
        dpidHex,
        ...(d.uuid ? { uuid: d.uuid } : {}),
      });
    }
  };

  const sorted = [...records].sort((a, b) => a._id.localeCompare(b._id));
  for (const r of sorted) {
    const name = r.vmName;
    if (name === undefined) continue;
    const other = claimedNames.get(name);
    if (other !== undefined) {
      actions.push({ type: "conflict", dpidHex: r._id, name, otherDpidHex: other });
      continue;
    }
    const cands = byName.get(name) ?? [];
    const d = pick(cands, r);
    if (!d) {
      if (r.host !== undefined && !hosts.has(r.host)) {
        actions.push({ type: "unreachable", dpidHex: r._id, name, host: r.host });
      } else if (expectsDomain(r)) {
        actions.push({ type: "mark-missing", dpidHex: r._id, name, patch: { state: "missing" } });
      }
      continue;
    }
    claimedNames.set(name, r._id);
    const observed = observedState(d.state);
    const patch: RecordPatch = {};
    const reasons: string[] = [];
    if (observed !== undefined && !COMPATIBLE[observed].includes(r.state)) {
      patch.state = observed;
      reasons.push(`state ${r.state} -> ${observed}`);
    }
    if (r.host !== d.host) {
      patch.host = d.host;
      reasons.push(`host ${r.host ?? "(none)"} -> ${d.host}`);
    }
    if (d.uuid !== undefined && r.uuid !== d.uuid) {
      patch.uuid = d.uuid;
      reasons.push(`uuid ${r.uuid ?? "(none)"} -> ${d.uuid}`);
    }
    const base = {
      dpidHex: r._id,
      name,
      host: d.host,
      ...(d.uuid ? { uuid: d.uuid } : {}),
      ...(observed ? { observed } : {}),
    };
    actions.push(
      reasons.length === 0 ? { type: "adopt", ...base } : { type: "repair", ...base, patch, reasons },
    );
    duplicates(name, d, r._id);
  }

  const recorded = new Set(records.map((r) => r._id));
  const configuredSorted = [...configured].sort((a, b) => a.dpidHex.localeCompare(b.dpidHex));
  for (const c of configuredSorted) {
    if (recorded.has(c.dpidHex) || claimedNames.has(c.name)) continue;
    const d = pick(byName.get(c.name) ?? [], undefined);
    if (!d) continue;
    claimedNames.set(c.name, c.dpidHex);
    const observed = observedState(d.state);
    const patch: RecordPatch = { vmName: c.name, host: d.host, state: observed ?? "stopped" };
    if (d.uuid !== undefined) patch.uuid = d.uuid;
    actions.push({
      type: "orphan",
      dpidHex: c.dpidHex,
      name: c.name,
      host: d.host,
      ...(d.uuid ? { uuid: d.uuid } : {}),
      ...(observed ? { observed } : {}),
      patch,
    });
    duplicates(c.name, d, c.dpidHex);
  }
  return actions.sort((a, b) =>
    ("dpidHex" in a ? a.dpidHex : "").localeCompare("dpidHex" in b ? b.dpidHex : ""),
  );
}
