/**
 * RouteFlow's mapping CSV (`rftestNconfig.csv`: header `vm_id,vm_port,ct_id,dp_id,dp_port`, ids in hex) -> rfboot
 * datapaths. Header `vm_id,vm_port,ct_id,dp_id,dp_port`; vm_id and dp_id in hex (optional 0x, leading
 * zeros dropped: `2A0A0A0A0A0` is 02:a0:a0:a0:a0:a0), the rest decimal.
 *
 * Decisions: a bad row is an error (exit 2) naming its line and field, all bad rows counted; a blank line
 * is a warning and skipped (rfserver itself crashes on one, so the warning tells the user the file is not
 * safe for rfserver as is). A VM spanning two datapaths, or two VMs on one, is an error: rfboot boots one
 * VM per datapath.
 */
import { parseDocument, isMap, isScalar } from "yaml";
import { ConfigError } from "../../common/errors.js";
import { MAX_DATA_PORTS } from "../../xmlgen/index.js";
import { configYaml, quoteIds } from "./emit.js";
import { dpidKey, parseDpidText, parseVmId, vmIdProblemText, vmIdToMac } from "./ids.js";
import { parseConfig } from "./load.js";
import { MAX_OF_PORT } from "./schema.js";
import type { RfbootConfig } from "./types.js";

/** CSV_HEADER is RouteFlow's header line. */
export const CSV_HEADER = "vm_id,vm_port,ct_id,dp_id,dp_port";

/** CsvRow is one parsed data line. */
export interface CsvRow {
  readonly line: number;
  readonly vmId: bigint;
  readonly vmPort: number;
  readonly ctId: number;
  readonly dpId: bigint;
  readonly dpPort: number;
}

/** ImportedDatapath is one switch and its VM as the CSV describes them. */
export interface ImportedDatapath {
  readonly dpid: bigint;
  readonly name: string;
  readonly vmId: bigint;
  /** Port pairs sorted by vmPort. */
  readonly ports: readonly { readonly vmPort: number; readonly dpPort: number }[];
}

/** CsvImport is the result of importRouteflowCsv. */
export interface CsvImport {
  readonly rows: readonly CsvRow[];
  readonly datapaths: readonly ImportedDatapath[];
  /** Non-fatal findings (blank lines), each naming its line. */
  readonly warnings: readonly string[];
  /** A complete, valid rfboot config (YAML) with these datapaths and every other setting at its default. */
  readonly yaml: string;
  /** That config, loaded. */
  readonly config: RfbootConfig;
}

/**
 * WELL_KNOWN_NAMES: the VM names RouteFlow's own demos give these vm_ids (rftest1, rftest2), so an
 * imported rftest CSV yields the names users know. Any other vm_id gets `rfvm-<vm_id hex>`.
 */
export const WELL_KNOWN_NAMES: ReadonlyMap<bigint, string> = new Map([
  [0x02a0a0a0a0a0n, "rfvmA"],
  [0x02b0b0b0b0b0n, "rfvmB"],
  [0x02c0c0c0c0c0n, "rfvmC"],
  [0x02d0d0d0d0d0n, "rfvmD"],
  [0x12a0a0a0a0a0n, "rfvm1"],
]);

/** csvVmName is the name an imported VM gets (WELL_KNOWN_NAMES, else `rfvm-<hex>`). */
export function csvVmName(vmId: bigint): string {
  return WELL_KNOWN_NAMES.get(vmId) ?? `rfvm-${vmId.toString(16)}`;
}

interface Problem {
  readonly line: number;
  readonly field: string;
  readonly message: string;
  readonly value: string;
}

const HEX_RE = /^(0x)?[0-9a-fA-F]+$/;
const DEC_RE = /^[0-9]+$/;

function decField(s: string, max: number): number | undefined {
  if (!DEC_RE.test(s) || s.length > 12) return undefined;
  const n = Number(s);
  return n <= max ? n : undefined;
}

/** parseCsvRows parses the CSV text into rows, collecting problems and warnings instead of stopping. */
function parseCsvRows(text: string): { rows: CsvRow[]; problems: Problem[]; warnings: string[] } {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop(); // the final newline ends the last line
  const rows: CsvRow[] = [];
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const header = (lines[0] ?? "").replace(/\r$/, "").replace(/^\uFEFF/, "");
  if (
    header
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .join(",") !== CSV_HEADER
  ) {
    const f = header.split(",").map((x) => x.trim());
    const looksLikeData =
      f.length === 5 &&
      HEX_RE.test(f[0]!) &&
      HEX_RE.test(f[3]!) &&
      [f[1], f[2], f[4]].every((x) => DEC_RE.test(x!));
    problems.push({
      line: 1,
      field: "header",
      message: looksLikeData
        ? `the header line is missing: rfserver skips the first line, so this row would be lost; add "${CSV_HEADER}"`
        : `must be "${CSV_HEADER}"`,
      value: header,
    });
  }
  for (let i = 1; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!.replace(/\r$/, "");
    if (raw.trim() === "") {
      warnings.push(
        `line ${lineNo}: blank line skipped (RouteFlow's rfserver crashes on blank lines: remove it)`,
      );
      continue;
    }
    const f = raw.split(",").map((s) => s.trim());
    if (f.length !== 5) {
      problems.push({
        line: lineNo,
        field: "row",
        message: `has ${f.length} fields; RouteFlow needs exactly 5 (${CSV_HEADER})`,
        value: raw,
      });
      continue;
    }
    const [vmIdS, vmPortS, ctIdS, dpIdS, dpPortS] = f as [string, string, string, string, string];
    const bad = (field: string, message: string, value: string) =>
      problems.push({ line: lineNo, field, message, value });
    let vmId: bigint | undefined;
    if (!HEX_RE.test(vmIdS) || vmIdS.replace(/^0x/i, "").length > 12) {
      bad("vm_id", "must be the VM's eth0 MAC in hex (at most 12 digits, e.g. 2A0A0A0A0A0)", vmIdS);
    } else {
      const r = parseVmId("0x" + vmIdS.replace(/^0x/i, "").replace(/^0+(?=.)/, ""));
      if (r.ok) vmId = r.value;
      else bad("vm_id", vmIdProblemText(r.problem), vmIdS);
    }
    const vmPort = decField(vmPortS, MAX_DATA_PORTS);
    if (vmPort === undefined || vmPort < 1)
      bad("vm_port", `must be a decimal number from 1 to ${MAX_DATA_PORTS} (guest ethN)`, vmPortS);
    const ctId = decField(ctIdS, 0xffff);
    if (ctId === undefined) bad("ct_id", "must be a decimal number", ctIdS);
    else if (ctId !== 0) bad("ct_id", "must be 0: rfboot serves one RouteFlow controller (ct_id 0)", ctIdS);
    let dpId: bigint | undefined;
    if (!HEX_RE.test(dpIdS)) bad("dp_id", "must be the datapath id in hex (e.g. 5 or 0x99)", dpIdS);
    else {
      dpId = parseDpidText(dpIdS);
      if (dpId === undefined) bad("dp_id", "exceeds 64 bits (16 hex digits)", dpIdS);
    }
    const dpPort = decField(dpPortS, MAX_OF_PORT);
    if (dpPort === undefined || dpPort < 1)
      bad("dp_port", `must be a decimal OpenFlow port number from 1 to ${MAX_OF_PORT}`, dpPortS);
    if (
      vmId !== undefined &&
      vmPort !== undefined &&
      vmPort >= 1 &&
      ctId === 0 &&
      dpId !== undefined &&
      dpPort !== undefined &&
      dpPort >= 1
    ) {
      rows.push({ line: lineNo, vmId, vmPort, ctId, dpId, dpPort });
    }
  }
  return { rows, problems, warnings };
}

/** groupRows turns rows into one datapath per VM, reporting conflicts as problems. */
function groupRows(rows: readonly CsvRow[], problems: Problem[]): ImportedDatapath[] {
  const vmOfDp = new Map<bigint, CsvRow>();
  const dpOfVm = new Map<bigint, CsvRow>();
  const vmPorts = new Map<string, CsvRow>();
  const dpPorts = new Map<string, CsvRow>();
  const groups = new Map<bigint, { vmId: bigint; ports: { vmPort: number; dpPort: number }[] }>();
  for (const r of rows) {
    const hex = (v: bigint) => v.toString(16).toUpperCase();
    const a = vmOfDp.get(r.dpId);
    if (a && a.vmId !== r.vmId) {
      problems.push({
        line: r.line,
        field: "dp_id",
        message: `datapath already served by vm_id ${hex(a.vmId)} (line ${a.line}); rfboot boots one VM per datapath`,
        value: hex(r.dpId),
      });
      continue;
    }
    const b = dpOfVm.get(r.vmId);
    if (b && b.dpId !== r.dpId) {
      problems.push({
        line: r.line,
        field: "vm_id",
        message: `VM already mapped to dp_id ${hex(b.dpId)} (line ${b.line}); rfboot boots one VM per datapath`,
        value: hex(r.vmId),
      });
      continue;
    }
    const vk = `${r.vmId}/${r.vmPort}`;
    const c = vmPorts.get(vk);
    if (c) {
      problems.push({
        line: r.line,
        field: "vm_port",
        message: `(vm_id, vm_port) already mapped at line ${c.line}`,
        value: String(r.vmPort),
      });
      continue;
    }
    const dk = `${r.dpId}/${r.dpPort}`;
    const d = dpPorts.get(dk);
    if (d) {
      problems.push({
        line: r.line,
        field: "dp_port",
        message: `(dp_id, dp_port) already mapped at line ${d.line}`,
        value: String(r.dpPort),
      });
      continue;
    }
    vmOfDp.set(r.dpId, r);
    dpOfVm.set(r.vmId, r);
    vmPorts.set(vk, r);
    dpPorts.set(dk, r);
    const g = groups.get(r.dpId) ?? { vmId: r.vmId, ports: [] };
    g.ports.push({ vmPort: r.vmPort, dpPort: r.dpPort });
    groups.set(r.dpId, g);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([dpid, g]) => ({
      dpid,
      vmId: g.vmId,
      name: csvVmName(g.vmId),
      ports: g.ports.sort((x, y) => x.vmPort - y.vmPort),
    }));
}

function problemsError(problems: readonly Problem[], source: string): ConfigError {
  const p = problems[0]!;
  const more =
    problems.length > 1
      ? ` [and ${problems.length - 1} more: ${problems
          .slice(1, 4)
          .map((q) => `line ${q.line} ${q.field}`)
          .join(", ")}${problems.length > 4 ? ", ..." : ""}]`
      : "";
  return new ConfigError(
    `${p.message}, got ${JSON.stringify(p.value)}${more}`,
    `${source} line ${p.line} ${p.field}`,
    p.value,
  );
}

/** datapathEntryObject renders one imported datapath as a config entry (dataPorts when k <-> k for 1..N). */
export function datapathEntryObject(d: ImportedDatapath, name = d.name): Record<string, unknown> {
  const identity = d.ports.every((p, i) => p.vmPort === i + 1 && p.dpPort === i + 1);
  return {
    name,
    vmId: vmIdToMac(d.vmId),
    ...(identity
      ? { dataPorts: d.ports.length }
      : { portMap: d.ports.map((p) => ({ vmPort: p.vmPort, dpPort: p.dpPort })) }),
  };
}

/**
 * importRouteflowCsv reads RouteFlow's mapping CSV and returns its datapaths and a valid config.
 * Throws ConfigError naming `<source> line N <field>` for the first bad row (with how many more).
 */
export function importRouteflowCsv(text: string, source = "<csv>"): CsvImport {
  const { rows, problems, warnings } = parseCsvRows(text);
  const datapaths = groupRows(rows, problems);
  if (problems.length > 0)
    throw problemsError(
      problems.sort((a, b) => a.line - b.line),
      source,
    );
  if (datapaths.length === 0) throw new ConfigError("has no mapping rows", source, undefined);
  // Names must be unique; a well-known name shared by... cannot happen (one name per vm_id), but keep it checked.
  const obj = {
    datapaths: Object.fromEntries(datapaths.map((d) => [dpidKey(d.dpid), datapathEntryObject(d)])),
  };
  const yaml = configYaml(
    obj,
    ` Generated by rfboot import-csv from ${source}: RouteFlow's rfconfig mapping as rfboot datapaths.\n` +
      ` Every other setting is rfboot's default (config/README.md): add openflow, mongo, hosts, defaults.`,
  );
  const config = parseConfig(yaml, { format: "yaml", source: `import of ${source}` });
  return { rows, datapaths, warnings, yaml, config };
}

/**
 * mergeCsvIntoConfig adds the CSV's datapaths to an existing config (YAML text, comments kept): a dpid
 * already listed keeps its name and settings and takes the CSV's vm_id and ports; new dpids are added.
 * A vm_id or name the CSV would give a second datapath is a ConfigError. The result is validated.
 */
export function mergeCsvIntoConfig(
  existingText: string,
  existingSource: string,
  imp: Pick<CsvImport, "datapaths">,
): { yaml: string; config: RfbootConfig } {
  const existing = parseConfig(existingText, { source: existingSource });
  const doc = parseDocument(existingText, { uniqueKeys: true });
  if (!isMap(doc.contents))
    throw new ConfigError("the top level must be a mapping", existingSource, undefined);
  if (!doc.has("datapaths") || !isMap(doc.get("datapaths", true))) doc.set("datapaths", doc.createNode({}));
  const dpMap = doc.get("datapaths", true);
  if (!isMap(dpMap)) throw new ConfigError("datapaths must be a mapping", existingSource, undefined);
  const keyOf = new Map(existing.datapaths.map((d) => [d.dpid, d.key]));
  const usedNames = new Map(existing.datapaths.map((d) => [d.name, d.dpid]));
  const usedVmIds = new Map(existing.datapaths.map((d) => [d.vmId, d.dpid]));
  for (const d of imp.datapaths) {
    const owner = usedVmIds.get(d.vmId);
    if (owner !== undefined && owner !== d.dpid) {
      throw new ConfigError(
        `vm_id ${vmIdToMac(d.vmId)} is already the VM of datapath 0x${owner.toString(16)} in ${existingSource}`,
        `datapaths.${JSON.stringify(dpidKey(d.dpid))}.vmId`,
        vmIdToMac(d.vmId),
      );
    }
    const key = keyOf.get(d.dpid);
    if (key !== undefined) {
      const pair = dpMap.items.find(
        (p) => isScalar(p.key) && (p.key.source === key || String(p.key.value) === key),
      );
      const entry = pair?.value;
      if (!isMap(entry))
        throw new ConfigError(
          "datapath entry must be a mapping",
          `datapaths.${JSON.stringify(key)}`,
          undefined,
        );
      const fresh = datapathEntryObject(d);
      entry.set("vmId", fresh.vmId);
      entry.delete("dataPorts");
      entry.delete("portMap");
      if (fresh.dataPorts !== undefined) entry.set("dataPorts", fresh.dataPorts);
      else entry.set("portMap", doc.createNode(fresh.portMap));
      continue;
    }
    let name = d.name;
    if (usedNames.has(name)) name = `rfvm-${d.vmId.toString(16)}`;
    if (usedNames.has(name)) {
      throw new ConfigError(
        `VM name ${name} is already used by datapath 0x${usedNames.get(name)!.toString(16)}; rename one of them`,
        `datapaths.${JSON.stringify(dpidKey(d.dpid))}.name`,
        name,
      );
    }
    usedNames.set(name, d.dpid);
    usedVmIds.set(d.vmId, d.dpid);
    dpMap.set(doc.createNode(dpidKey(d.dpid)), doc.createNode(datapathEntryObject(d, name)));
  }
  quoteIds(doc);
  const yaml = doc.toString({ lineWidth: 0 });
  const config = parseConfig(yaml, { format: "yaml", source: `${existingSource} merged` });
  return { yaml, config };
}
