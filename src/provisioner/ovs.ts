/**
 * The Open vSwitch seam of the cross-host data plane: the few `ovs-vsctl` operations it needs (list a
 * bridge's ports with their VLAN tag and external_ids, find the ports rfboot made for a VM, add a patch-port
 * pair, delete ports), each one argument array through the process seam, never a shell string. Output is
 * read in ovs-vsctl's JSON format, failures become OvsErrors with a kind (`unreachable`, `bridge-missing`,
 * ...), so callers branch on the kind and users read what failed and what to do.
 */
import { OvsError, type OvsErrorKind } from "../common/errors.js";
import { processes, type ProcessSeam, type RunOutcome } from "./libvirt/index.js";

/** OvsPort is one row of the Port table as the data plane reads it. */
export interface OvsPort {
  readonly name: string;
  /** The access VLAN (`tag` column), when set. */
  readonly tag?: number;
  readonly externalIds: Readonly<Record<string, string>>;
}

/** PatchEnd is one end of a patch-port pair: its port, the bridge it is on, the access VLAN (trunk end). */
export interface PatchEnd {
  readonly bridge: string;
  readonly name: string;
  readonly tag?: number;
  readonly externalIds: Readonly<Record<string, string>>;
}

/** OvsSeam is what the data plane asks of Open vSwitch; tests pass an in-memory one. */
export interface OvsSeam {
  /** bridgePorts lists the ports of `bridge`; OvsError `bridge-missing` when there is no such bridge. */
  bridgePorts(bridge: string): Promise<OvsPort[]>;
  /** findPorts lists every port, on any bridge, whose external_ids has `key` = `value`. */
  findPorts(key: string, value: string): Promise<OvsPort[]>;
  /** addPatchPair creates (or completes) two patch ports peered to each other, in one transaction. */
  addPatchPair(a: PatchEnd, b: PatchEnd): Promise<void>;
  /** deletePorts removes ports by name, wherever they are; absent ones are fine. */
  deletePorts(names: readonly string[]): Promise<void>;
}

/** OvsVsctlOptions configure ovsVsctl. */
export interface OvsVsctlOptions {
  /** processes: the process seam (default the real one). */
  readonly processes?: ProcessSeam;
  /** file: the ovs-vsctl binary (default `ovs-vsctl` on PATH). */
  readonly file?: string;
  /** timeoutMs per call (default 10 s); ovs-vsctl's own `--timeout` is set a little below it. */
  readonly timeoutMs?: number;
}

/** classifyOvs names what a failed ovs-vsctl outcome means, from its (C locale) stderr and exit. */
export function classifyOvs(o: Pick<RunOutcome, "stderr" | "exitCode" | "timedOut">): OvsErrorKind {
  const s = o.stderr;
  if (o.timedOut || /timeout|timed out/i.test(s)) return "timeout";
  if (o.exitCode === undefined) return "unreachable";
  if (/database connection failed|db\.sock|Connection refused|No such file or directory/.test(s))
    return "unreachable";
  if (/no bridge named/.test(s)) return "bridge-missing";
  if (/already exists on bridge/.test(s)) return "port-exists";
  return "other";
}

const FIX: Record<OvsErrorKind, string> = {
  unreachable:
    "start Open vSwitch on this machine (/usr/share/openvswitch/scripts/ovs-ctl start) and check that ovs-vsctl show answers",
  timeout: "ovs-vswitchd did not answer in time: check that it runs and is not stuck (ovs-vsctl show)",
  "bridge-missing":
    "create the bridge (ovs-vsctl add-br NAME -- set bridge NAME datapath_type=netdev) or fix the bridge name in the config",
  "port-exists": "a port of that name belongs to another bridge: remove it (ovs-vsctl del-port NAME)",
  other: "see Open vSwitch's message above",
};

function lastLine(s: string): string {
  const lines = s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return lines[lines.length - 1] ?? "";
}

type Json = unknown;

/** atom reads an OVSDB JSON atom or an empty/one-element set as a scalar. */
function atom(v: Json): string | number | undefined {
  if (typeof v === "string" || typeof v === "number") return v;
  if (Array.isArray(v) && v[0] === "set" && Array.isArray(v[1])) {
    const items = v[1] as Json[];
    return items.length === 1 ? atom(items[0]) : undefined;
  }
  return undefined;
}

/** mapOf reads an OVSDB JSON map (`["map", [[k, v], ...]]`) of strings. */
function mapOf(v: Json): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v) && v[0] === "map" && Array.isArray(v[1])) {
    for (const kv of v[1] as Json[]) {
      if (Array.isArray(kv) && kv.length === 2) out[String(kv[0])] = String(kv[1]);
    }
  }
  return out;
}

/**
 * parsePortRows reads `ovs-vsctl --format=json --columns=name,tag,external_ids list|find port` output.
 * Throws OvsError `other` when it is not that JSON (an ovs-vsctl of another shape).
 */
export function parsePortRows(stdout: string, args: readonly string[]): OvsPort[] {
  let doc: { headings?: unknown; data?: unknown };
  try {
    doc = JSON.parse(stdout) as typeof doc;
  } catch (e) {
    throw new OvsError(
      `ovs-vsctl ${args.join(" ")} printed no JSON table: ${JSON.stringify(stdout.slice(0, 80))}`,
      "other",
      args,
      "",
      0,
      { cause: e },
    );
  }
  const headings = Array.isArray(doc.headings) ? (doc.headings as string[]) : [];
  const col = (h: string) => headings.indexOf(h);
  const [iName, iTag, iIds] = [col("name"), col("tag"), col("external_ids")];
  const rows = Array.isArray(doc.data) ? (doc.data as Json[][]) : [];
  return rows.map((r) => {
    const name = atom(r[iName]);
    const tag = iTag >= 0 ? atom(r[iTag]) : undefined;
    return {
      name: String(name ?? ""),
      ...(typeof tag === "number" ? { tag } : {}),
      externalIds: iIds >= 0 ? mapOf(r[iIds]) : {},
    };
  });
}

/** idsArgs renders external_ids as `set` arguments (`external_ids:k=v`), keys sorted for stable arrays. */
function idsArgs(ids: Readonly<Record<string, string>>): string[] {
  return Object.keys(ids)
    .sort()
    .map((k) => `external_ids:${k}=${JSON.stringify(ids[k])}`);
}

/** patchArgs adds one patch end: the port (may exist), its peer, its tag and external_ids. */
function patchArgs(end: PatchEnd, peer: string): string[] {
  return [
    "--",
    "--may-exist",
    "add-port",
    end.bridge,
    end.name,
    "--",
    "set",
    "interface",
    end.name,
    "type=patch",
    `options:peer=${peer}`,
    "--",
    "set",
    "port",
    end.name,
    ...(end.tag !== undefined ? [`tag=${end.tag}`] : []),
    ...idsArgs(end.externalIds),
  ];
}

/**
 * ovsVsctl is the real OvsSeam: `ovs-vsctl --timeout=N ...` through the process seam, JSON output for
 * tables, OvsError (`unreachable`, `timeout`, `bridge-missing`, `port-exists`, `other`) naming the call and
 * the fix.
 */
export function ovsVsctl(options: OvsVsctlOptions = {}): OvsSeam {
  const seam = options.processes ?? processes;
  const file = options.file ?? "ovs-vsctl";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const ovsTimeout = Math.max(1, Math.floor(timeoutMs / 1000) - 1);
  const run = async (args: readonly string[]) => {
    const full = [`--timeout=${ovsTimeout}`, ...args];
    return seam.run({
      file,
      args: full,
      timeoutMs,
      classify: (o) => {
        if (!o.failed) return undefined;
        const kind = classifyOvs(o);
        const said = lastLine(o.stderr) || o.summary || `exit ${o.exitCode ?? o.signal ?? "?"}`;
        return new OvsError(
          `${file} ${full.join(" ")} failed: ${said}; ${FIX[kind]}`,
          kind,
          full,
          o.stderr,
          o.exitCode,
          { cause: o.detail },
        );
      },
    });
  };
  const columns = ["--format=json", "--columns=name,tag,external_ids"];
  return {
    async bridgePorts(bridge) {
      const names = (await run(["list-ports", bridge])).stdout
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      if (names.length === 0) return [];
      // Every port, filtered here: naming them would fail on one deleted in between (`no row`).
      const args = [...columns, "list", "port"];
      const mine = new Set(names);
      return parsePortRows((await run(args)).stdout, args).filter((p) => mine.has(p.name));
    },
    async findPorts(key, value) {
      const args = [...columns, "find", "port", `external_ids:${key}=${JSON.stringify(value)}`];
      return parsePortRows((await run(args)).stdout, args);
    },
    async addPatchPair(a, b) {
      await run([...patchArgs(a, b.name), ...patchArgs(b, a.name)].slice(1));
    },
    async deletePorts(names) {
      if (names.length === 0) return;
      await run(names.flatMap((n) => ["--", "--if-exists", "del-port", n]).slice(1));
    },
  };
}
