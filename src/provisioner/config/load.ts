/**
 * Reading a config: bytes -> YAML/JSON -> schema -> cross-checks -> every configured VM resolved and
 * validated by xmlgen -> frozen RfbootConfig. Anything wrong is a ConfigError naming the key path.
 */
import { open } from "node:fs/promises";
import { extname } from "node:path";
import { LineCounter, isMap, isScalar, parseDocument, type Document, type Node as YamlNode } from "yaml";
import { ConfigError, errorMessage } from "../../common/errors.js";
import { HYPERVISOR_NAMES, validateVmDescription, type HypervisorName } from "../../xmlgen/index.js";
import { IDENT_RE } from "./checks.js";
import { DPID_FORMS, dpidProblemText, parseDpidText } from "./ids.js";
import {
  combineConfigErrors,
  configError,
  formatPath,
  issuesToConfigError,
  valueAt,
  withLocation,
  type Locate,
  type PathSegment,
} from "./issues.js";
import {
  buildResolvedVm,
  checkPortPairs,
  deepFreeze,
  dpidPlaceholders,
  hostAccepts,
  pickSettings,
  profileChain,
  resolveSettings,
  substitute,
  templatePortPairs,
  type ResolveContext,
  type VmIdentity,
} from "./resolve.js";
import { VM_SETTINGS_KEYS, configSchema, type ParsedConfig, type PartialVmSettings } from "./schema.js";
import type { DatapathConfig, HostConfig, ResolvedVm, RfbootConfig } from "./types.js";
import { templateVmId } from "./ids.js";

/** MAX_CONFIG_BYTES: larger files are refused before parsing (a config is a few KiB; this is not one). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** ConfigFormat is how a config's text is parsed. */
export type ConfigFormat = "yaml" | "json";

/** ParseOptions for parseConfig: the format (default: sniffed) and a source name for messages. */
export interface ParseOptions {
  readonly format?: ConfigFormat;
  readonly source?: string;
}

/** Per-config data computed at load (configured VMs by dpid and by name). */
interface Index {
  readonly byDpid: ReadonlyMap<bigint, ResolvedVm>;
  readonly byName: ReadonlyMap<string, ResolvedVm>;
  /** Every MAC (vm_ids and data NICs) of configured VMs, to keep template VMs from clashing. */
  readonly macs: ReadonlySet<string>;
}

const INDEX = new WeakMap<RfbootConfig, Index>();

/** configIndex returns the load-time index of a config made by parseConfig/loadConfig. */
export function configIndex(config: RfbootConfig): Index {
  const ix = INDEX.get(config);
  if (!ix) throw new ConfigError("not a config made by parseConfig or loadConfig", "", undefined);
  return ix;
}

/** sniffFormat picks json when the first non-blank character opens a JSON object, else yaml. */
export function sniffFormat(text: string): ConfigFormat {
  return /^\s*\{/.test(text) ? "json" : "yaml";
}

/** formatForPath picks the format from a file name's extension; undefined: sniff the content. */
export function formatForPath(path: string): ConfigFormat | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === ".json") return "json";
  if (ext === ".yaml" || ext === ".yml") return "yaml";
  return undefined;
}

/**
 * loadConfig reads and validates the config file at `path` (YAML or JSON by extension, else sniffed).
 * Throws ConfigError for an unreadable, oversized or invalid file; the daemon must not start then.
 */
export async function loadConfig(path: string): Promise<RfbootConfig> {
  let text: string;
  try {
    const fh = await open(path, "r");
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ConfigError(`config ${path} is not a regular file`, "", path);
      if (st.size > MAX_CONFIG_BYTES) {
        throw new ConfigError(
          `config ${path} is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`,
          "",
          path,
        );
      }
      const buf = await fh.readFile();
      if (buf.length > MAX_CONFIG_BYTES) {
        throw new ConfigError(`config ${path} is over ${MAX_CONFIG_BYTES} bytes`, "", path);
      }
      text = buf.toString("utf8");
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : errorMessage(err);
    throw new ConfigError(`cannot read config ${path}: ${why}`, "", path, { cause: err });
  }
  const format = formatForPath(path);
  return parseConfig(text, { ...(format ? { format } : {}), source: path });
}

/** ParsedText is a document read from text, plus a locator from key paths to lines. */
interface ParsedText {
  readonly data: unknown;
  readonly locate: Locate;
  /** Datapath keys in file order (a JS object lists integer-like keys such as "5" first). */
  readonly datapathKeys?: readonly string[];
  /** Datapath keys that could not be read (their entries are left out of `data`). */
  readonly problems: readonly ConfigError[];
}

/**
 * readText parses YAML or JSON. Datapath keys are re-read from their source text: an unquoted YAML key
 * like `10` is read as the text "10" (hex, like every dpid), except that a plain number whose hex and
 * decimal readings differ, or that is >= 2^53, is refused with a hint to quote it.
 */
function readText(text: string, format: ConfigFormat, source: string): ParsedText {
  if (format === "json") {
    try {
      JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${source} is not valid JSON: ${errorMessage(err)}`, "", undefined, {
        cause: err,
      });
    }
  }
  const lc = new LineCounter();
  // uniqueKeys: duplicate keys are an error (JSON.parse would silently keep the last one).
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: true, merge: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const pos = problem.linePos?.[0];
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
    const what = (problem.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError(
      `${source}: ${format === "json" ? "JSON" : "YAML"} error${where}: ${what}`,
      "",
      undefined,
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (err) {
    throw new ConfigError(`${source}: ${errorMessage(err)}`, "", undefined, { cause: err });
  }
  const locate = makeLocator(doc, lc, source);
  const dps = doc.get("datapaths", true);
  if (isMap(dps) && data !== null && typeof data === "object" && !Array.isArray(data)) {
    const out: Record<string, unknown> = {};
    const firstLine = new Map<string, number>();
    const problems: ConfigError[] = [];
    for (const pair of dps.items) {
      let key: string;
      try {
        key = datapathKeyText(pair.key, locate);
      } catch (err) {
        // A key that cannot be read is reported and its entry skipped; the rest is still checked.
        if (!(err instanceof ConfigError)) throw err;
        problems.push(err);
        continue;
      }
      const line = lineOf(pair.key as YamlNode, lc);
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        problems.push(
          configError(["datapaths", key], `written twice (also at line ${firstLine.get(key)})`, key, {
            source: `${source} line ${line}`,
          }),
        );
        continue;
      }
      firstLine.set(key, line ?? 0);
      const v = pair.value;
      out[key] =
        v && typeof v === "object" && "toJS" in v ? (v as YamlNode).toJS(doc, { maxAliasCount: 50 }) : v;
    }
    (data as Record<string, unknown>).datapaths = out;
    return { data, locate, datapathKeys: [...firstLine.keys()], problems };
  }
  return { data, locate, problems: [] };
}

function lineOf(node: YamlNode | null | undefined, lc: LineCounter): number | undefined {
  const start = node?.range?.[0];
  return start === undefined ? undefined : lc.linePos(start).line;
}

/** datapathKeyText applies the unquoted-number rule to one `datapaths` key. */
function datapathKeyText(key: unknown, locate: Locate): string {
  if (!isScalar(key)) {
    throw configError(["datapaths"], 'datapath keys must be plain text such as "0x5"', String(key));
  }
  const v = key.value;
  if (typeof v === "string") return v;
  const src = key.source ?? String(v);
  const at = { locate };
  if (typeof v === "number" || typeof v === "bigint") {
    if (typeof v === "number" && !Number.isInteger(v)) {
      throw configError(["datapaths", src], `is not a datapath id: write ${DPID_FORMS}`, src, at);
    }
    if (/^0x[0-9a-f]+$/i.test(src)) return src;
    if (typeof v === "number" && !Number.isSafeInteger(v)) {
      throw configError(
        ["datapaths", src],
        `unquoted number at or above 2^53 cannot be read exactly by YAML tools: quote it ("${src}" is read as hex; "dec:${src}" as decimal)`,
        src,
        at,
      );
    }
    const hex = /^[0-9]+$/.test(src) ? parseDpidText(src) : undefined;
    if (hex !== undefined && hex === BigInt(v)) return src;
    throw configError(
      ["datapaths", src],
      `unquoted number is ambiguous (decimal ${v} or hex 0x${src}?): quote it, "0x${src}" for hex as OVS prints datapath ids, or "dec:${src}"`,
      src,
      at,
    );
  }
  throw configError(["datapaths", src], `is not a datapath id: write ${DPID_FORMS}`, src, at);
}

/** makeLocator maps a key path to `source line N` using the YAML node ranges. */
function makeLocator(doc: Document, lc: LineCounter, source: string): Locate {
  return (path) => {
    let node: unknown = doc.contents;
    let lastLine: number | undefined;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => {
          const k = p.key;
          if (isScalar(k)) return String(k.value) === String(seg) || k.source === seg;
          return false;
        });
        if (!pair) break;
        lastLine = lineOf(pair.key as YamlNode, lc) ?? lastLine;
        node = pair.value;
      } else if (node && typeof node === "object" && "items" in node && typeof seg === "number") {
        const item = (node as { items: unknown[] }).items[seg];
        if (item === undefined) break;
        lastLine = lineOf(item as YamlNode, lc) ?? lastLine;
        node = item;
      } else break;
    }
    return lastLine !== undefined ? `${source} line ${lastLine}` : source;
  };
}

/**
 * parseConfig validates config text. `format` defaults to sniffing (`{` first: JSON, else YAML);
 * `source` names the origin in messages. Returns a deeply frozen RfbootConfig; throws ConfigError.
 */
export function parseConfig(text: string, options: ParseOptions = {}): RfbootConfig {
  const source = options.source ?? "<inline>";
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_CONFIG_BYTES) {
    throw new ConfigError(`${source} is ${bytes} bytes; the limit is ${MAX_CONFIG_BYTES}`, "", undefined);
  }
  const format = options.format ?? sniffFormat(text);
  const { data, locate, datapathKeys, problems } = readText(text, format, source);
  if (data === null || data === undefined) {
    throw new ConfigError(`${source} is empty: a config needs at least a datapaths section`, "", undefined);
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError(
      `${source}: the top level must be a mapping of sections (openflow, mongo, ...)`,
      "",
      data,
    );
  }
  const r = configSchema.safeParse(data);
  try {
    if (!r.success)
      throw combineConfigErrors([...problems, issuesToConfigError(r.error.issues, data, { locate })]);
    return finish(r.data, source, locate, datapathKeys, problems);
  } catch (err) {
    throw err instanceof ConfigError ? inFileOrder(err) : err;
  }
}

/** inFileOrder lists a ConfigError's problems by the line they name (problems without a line last). */
function inFileOrder(err: ConfigError): ConfigError {
  if (err.problems.length < 2) return err;
  const line = (m: string) => Number(/ line (\d+)\)$/.exec(m)?.[1] ?? Infinity);
  const problems = [...err.problems].sort((a, b) => line(a.message) - line(b.message));
  const first = problems[0]!;
  return new ConfigError(first.message, first.path, first.value, { problems });
}

/**
 * isRemoteUri says whether a libvirt URI names a server (`qemu+tcp://10.0.0.2/system`, `qemu+ssh://h/system`):
 * such a host does not see the rfboot machine's files. `qemu:///system` and unix-socket URIs are local.
 */
export function isRemoteUri(uri: string): boolean {
  const m = /^[a-z0-9]+(?:\+([a-z0-9]+))?:\/\/([^/?]*)/.exec(uri);
  if (!m) return false;
  const transport = m[1];
  const server = m[2] ?? "";
  if (transport === "unix") return false;
  return server !== "" && !/^(?:[^@]*@)?(?:localhost|127\.0\.0\.1|\[::1\])(?::\d+)?$/.test(server);
}

/** hypervisorsForUri derives the hypervisors a libvirt URI's driver runs. */
export function hypervisorsForUri(uri: string): HypervisorName[] {
  const scheme = /^([a-z0-9]+)/.exec(uri)?.[1] ?? "";
  switch (scheme) {
    case "qemu":
      return ["qemu", "kvm"];
    case "lxc":
      return ["lxc"];
    case "xen":
    case "libxl":
      return ["xen-pv", "xen-hvm"];
    default:
      // test:// accepts every domain type; unknown drivers: do not second-guess, list hypervisors explicitly.
      return [...HYPERVISOR_NAMES];
  }
}

/**
 * finish runs the cross-checks, resolves every configured VM, freezes and indexes the config. Every problem
 * found is collected (a check that depends on a failed one is skipped) and thrown as one ConfigError.
 */
function finish(
  p: ParsedConfig,
  source: string,
  locate: Locate,
  keyOrder: readonly string[] | undefined,
  earlier: readonly ConfigError[],
): RfbootConfig {
  const at = { locate };
  const problems: ConfigError[] = [...earlier];
  /** attempt runs a check that throws ConfigError; true when it passed. */
  const attempt = (check: () => void): boolean => {
    try {
      check();
      return true;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
      return false;
    }
  };
  const report = (err: ConfigError): void => {
    problems.push(err);
  };

  // Profiles: names, existence of parents, no cycles.
  for (const name of Object.keys(p.profiles)) {
    if (!IDENT_RE.test(name)) {
      report(configError(["profiles", name], "profile names may contain only A-Z a-z 0-9 _ . -", name, at));
    }
    attempt(() => relocated(() => profileChain(p.profiles, name, ["profiles", name]), at));
  }

  // Hosts: unique names and URIs; directories default under stateDir.
  const hosts: HostConfig[] = [];
  const hostNames = new Map<string, number>();
  const hostUris = new Map<string, number>();
  p.hosts.forEach((h, i) => {
    const a = hostNames.get(h.name);
    if (a !== undefined) {
      report(configError(["hosts", i, "name"], `host name used twice (also hosts[${a}])`, h.name, at));
    }
    const b = hostUris.get(h.uri);
    if (b !== undefined) {
      report(
        configError(
          ["hosts", i, "uri"],
          `same libvirt URI as hosts[${b}]: one host listed twice would double its capacity`,
          h.uri,
          at,
        ),
      );
    }
    if (a !== undefined || b !== undefined) return;
    hostNames.set(h.name, i);
    hostUris.set(h.uri, i);
    hosts.push({
      name: h.name,
      uri: h.uri,
      maxVms: h.maxVms,
      ...(h.memoryMiB !== undefined ? { memoryMiB: h.memoryMiB } : {}),
      maxConcurrentStarts: h.maxConcurrentStarts,
      storageDir: h.storageDir ?? `${p.stateDir}/disks`,
      consoleLogDir: h.consoleLogDir ?? `${p.stateDir}/console`,
      hypervisors: h.hypervisors ? [...new Set(h.hypervisors)] : hypervisorsForUri(h.uri),
      pool: h.pool,
      images: h.images ?? (isRemoteUri(h.uri) ? "pool" : "path"),
      upload: h.upload,
      memoryReserveMiB: h.memoryReserveMiB,
      ...(h.dataPlane ? { dataPlane: { ...h.dataPlane } } : {}),
    });
  });

  // OpenFlow: timeouts that make sense; a relay must not point at itself.
  const of = p.openflow;
  if (of.echoTimeoutSeconds <= of.echoIntervalSeconds) {
    report(
      configError(
        ["openflow", "echoTimeoutSeconds"],
        `must be longer than echoIntervalSeconds (${of.echoIntervalSeconds}), or every peer looks dead`,
        of.echoTimeoutSeconds,
        at,
      ),
    );
  }
  if (of.mode === "relay" && of.upstream.port === of.listen.port) {
    const wild = ["0.0.0.0", "::"].includes(of.listen.host);
    if (wild || of.listen.host === of.upstream.host) {
      report(
        configError(
          ["openflow", "upstream"],
          "relay upstream is rfboot's own listen address (a loop)",
          `${of.upstream.host}:${of.upstream.port}`,
          at,
        ),
      );
    }
  }

  if (p.policies.lateRows.action === "reconnect" && of.mode !== "relay") {
    report(
      configError(
        ["policies", "lateRows", "action"],
        "reconnect needs openflow.mode relay: in listen mode the switch keeps its connection to rfproxy, " +
          "so closing rfboot's own makes nothing register again; use report",
        "reconnect",
        at,
      ),
    );
  }

  // Datapaths: dpids, uniqueness, ports, references; then each VM resolved and checked by xmlgen.
  const ctx = { defaults: p.defaults, profiles: p.profiles };
  const seenDpid = new Map<bigint, string>();
  const seenName = new Map<string, string>();
  const seenVmId = new Map<bigint, string>();
  const seenMac = new Map<string, string>();
  const seenDev = new Map<string, string>();
  const datapaths: DatapathConfig[] = [];
  const byDpid = new Map<bigint, ResolvedVm>();
  const byName = new Map<string, ResolvedVm>();
  const keys = keyOrder ?? Object.keys(p.datapaths);
  for (const key of keys) {
    const e = p.datapaths[key]!;
    const base: PathSegment[] = ["datapaths", key];
    const dpid = parseDpidText(key);
    if (dpid === undefined) {
      report(configError(base, dpidProblemText(key), key, at));
      continue;
    }
    const prevKey = seenDpid.get(dpid);
    if (prevKey !== undefined) {
      report(
        configError(
          base,
          `same datapath as ${JSON.stringify(prevKey)} (0x${dpid.toString(16)}); list it once`,
          key,
          at,
        ),
      );
      continue;
    }
    seenDpid.set(dpid, key);
    const prevName = seenName.get(e.name);
    if (prevName !== undefined) {
      report(
        configError(
          [...base, "name"],
          `VM name used twice (also datapaths.${JSON.stringify(prevName)})`,
          e.name,
          at,
        ),
      );
    } else seenName.set(e.name, key);
    const prevVm = seenVmId.get(e.vmId);
    if (prevVm !== undefined) {
      report(
        configError(
          [...base, "vmId"],
          `vm_id used twice (also datapaths.${JSON.stringify(prevVm)})`,
          e.vmId,
          at,
        ),
      );
    } else seenVmId.set(e.vmId, key);
    // A second VM of the same name or vm_id would also clash on every device and MAC: one problem is enough.
    if (prevName !== undefined || prevVm !== undefined) continue;
    if (e.dataPorts !== undefined && e.portMap !== undefined) {
      report(
        configError([...base, "portMap"], "set either dataPorts (a count) or portMap, not both", "both", at),
      );
      continue;
    }
    if (e.dataPorts === undefined && e.portMap === undefined) {
      report(
        configError(
          [...base, "dataPorts"],
          "is required: a data port count, or a portMap list",
          undefined,
          at,
        ),
      );
      continue;
    }
    const pairs =
      e.portMap ?? Array.from({ length: e.dataPorts ?? 0 }, (_, i) => ({ vmPort: i + 1, dpPort: i + 1 }));
    if (!attempt(() => relocated(() => checkPortPairs(pairs, [...base, "portMap"]), at))) continue;
    if (e.host !== undefined && !hostNames.has(e.host)) {
      report(
        configError(
          [...base, "host"],
          `no such host (hosts: ${[...hostNames.keys()].join(", ")})`,
          e.host,
          at,
        ),
      );
      continue;
    }
    const id: VmIdentity = {
      source: "configured",
      dpid,
      name: e.name,
      vmId: e.vmId,
      portPairs: pairs,
      ...(e.profile !== undefined ? { profile: e.profile } : {}),
      ...(e.host !== undefined ? { hostPin: e.host } : {}),
      own: pickSettings(e),
      path: base,
    };
    let vm: ResolvedVm | undefined;
    if (!attempt(() => (vm = resolveAndCheck(ctx, id, hosts, at))) || vm === undefined) continue;
    for (const mac of [vm.vmMac, ...vm.ports.map((x) => x.mac)]) {
      const other = seenMac.get(mac);
      if (other !== undefined && other !== key) {
        report(
          configError(
            [...base, "vmId"],
            `MAC ${mac} of this VM is also a MAC of datapaths.${JSON.stringify(other)}`,
            vm.vmMac,
            at,
          ),
        );
        break;
      }
      seenMac.set(mac, key);
    }
    for (const port of vm.ports) {
      const other = seenDev.get(port.hostDev);
      if (other !== undefined) {
        report(
          configError(
            [...base, "name"],
            `host device ${port.hostDev} is also used by datapaths.${JSON.stringify(other)}`,
            e.name,
            at,
          ),
        );
        break;
      }
      seenDev.set(port.hostDev, key);
    }
    datapaths.push({ ...e, dpid, key });
    byDpid.set(dpid, vm);
    byName.set(vm.name, vm);
  }
  datapaths.sort((a, b) => (a.dpid < b.dpid ? -1 : a.dpid > b.dpid ? 1 : 0));

  // The template: references and name pattern; a sample VM must resolve.
  const t = p.policies.unknownDatapath.template;
  const tpath: PathSegment[] = ["policies", "unknownDatapath", "template"];
  let templateOk = true;
  if (t.host !== undefined && !hostNames.has(t.host)) {
    report(
      configError(
        [...tpath, "host"],
        `no such host (hosts: ${[...hostNames.keys()].join(", ")})`,
        t.host,
        at,
      ),
    );
    templateOk = false;
  }
  if (!/\{(dpid|dpid16|dpidDec)\}/.test(t.name)) {
    report(
      configError(
        [...tpath, "name"],
        "must contain {dpid}, {dpid16} or {dpidDec}, or every unknown switch gets the same VM",
        t.name,
        at,
      ),
    );
    templateOk = false;
  }
  if (p.policies.unknownDatapath.action === "template") {
    if (templateOk) {
      for (const sample of [1n, (1n << 64n) - 2n]) {
        if (!attempt(() => resolveTemplate(ctx, t, sample, [1, 2], hosts, at))) break;
      }
    }
  } else if (t.profile !== undefined) {
    attempt(() => relocated(() => profileChain(p.profiles, t.profile!, [...tpath, "profile"]), at));
  }

  if (problems.length > 0) throw combineConfigErrors(problems);

  const config = {
    ...p,
    source,
    hosts,
    datapaths,
  } as RfbootConfig;
  deepFreeze(config);
  INDEX.set(config, { byDpid, byName, macs: new Set(seenMac.keys()) });
  return config;
}

/** relocated runs `fn`; a ConfigError it throws gets file lines, and keys moved by `blame` (see withLocation). */
function relocated<T>(
  fn: () => T,
  at: { locate?: Locate },
  blame?: (path: PathSegment[]) => PathSegment[],
): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw withLocation(err, at.locate, blame);
    throw err;
  }
}

/**
 * resolveAndCheck resolves one VM and validates its description on the first host it could go to. A problem
 * found after merging is reported at the key the user wrote (the entry's, a profile's or `defaults`'), not at
 * the merged result.
 */
export function resolveAndCheck(
  ctx: Parameters<typeof resolveSettings>[0],
  id: VmIdentity,
  hosts: readonly HostConfig[],
  at: { locate?: Locate },
  overrides: Parameters<typeof resolveSettings>[2] = {},
): ResolvedVm {
  return relocated(
    () => {
      const settings = resolveSettings(ctx, id, overrides);
      const vm = buildResolvedVm(id, settings);
      const candidates = candidateHosts(hosts, vm);
      if (candidates.length === 0) {
        if (vm.hostPin !== undefined) {
          throw configError(
            [...id.path, "host"],
            `host ${vm.hostPin} does not run ${vm.hypervisor} VMs (its hypervisors: ${hosts.find((h) => h.name === vm.hostPin)?.hypervisors.join(", ")})`,
            vm.hostPin,
          );
        }
        throw configError(
          [...id.path, "hypervisor"],
          `no host runs ${vm.hypervisor} VMs; ${hypervisorHostHint(vm.hypervisor)}`,
          vm.hypervisor,
        );
      }
      validateVmDescription(vm.describe(candidates[0]!), `${formatPath(id.path)}.domain`);
      return vm;
    },
    at,
    (path) => blameSetting(ctx, id, overrides, path),
  );
}

/** HOST_URI_FOR names a libvirt URI whose driver runs each hypervisor, for hints. */
const HOST_URI_FOR: Readonly<Record<HypervisorName, string>> = {
  qemu: "qemu:///system",
  kvm: "qemu:///system",
  lxc: "lxc:///system",
  "xen-pv": "xen:///system",
  "xen-hvm": "xen:///system",
  test: "test:///default",
};

/** hypervisorHostHint says how to add a host that runs `hv` VMs. */
export function hypervisorHostHint(hv: HypervisorName): string {
  return `to run it, add a host whose URI serves ${hv} (like ${HOST_URI_FOR[hv]}) or list ${hv} in a host's hypervisors`;
}

/** domainSetting maps a field of an xmlgen description (`interfaces[1].mac`) to the VM setting it comes from. */
function domainSetting(rest: readonly PathSegment[]): PathSegment[] {
  const [field, ...r] = rest;
  switch (field) {
    case "filesystems":
      return ["boot", "rootfs"];
    case "disks":
      return ["disk", "image"];
    case "interfaces":
      if (r[1] === "model") return ["network", "nicModel"];
      return r[0] === 0 ? ["network", "management"] : ["network", "data"];
    case "console":
      return ["console"];
    case undefined:
      return [];
    default:
      return [field, ...r];
  }
}

/**
 * blameSetting moves a problem at `<entry>.<setting>` or `<entry>.domain.<field>` to where that setting was
 * written: the entry itself, the nearest profile of its chain, or `defaults`. A setting nobody wrote (a
 * built-in default) or one given as an override (a command-line flag) stays at the entry.
 */
function blameSetting(
  ctx: ResolveContext,
  id: VmIdentity,
  overrides: PartialVmSettings,
  path: PathSegment[],
): PathSegment[] {
  if (path.length <= id.path.length || id.path.some((seg, i) => path[i] !== seg)) return path;
  let key = path.slice(id.path.length);
  if (key[0] === "domain") key = domainSetting(key.slice(1));
  if (key.length === 0 || !(VM_SETTINGS_KEYS as readonly PathSegment[]).includes(key[0]!)) {
    return [...id.path, ...(key[0] === "uuid" || key[0] === "title" ? ["name"] : key)];
  }
  const layers: { path: readonly PathSegment[]; settings: unknown }[] = [{ path: id.path, settings: id.own }];
  const seen = new Set<string>();
  for (let cur = id.profile; cur !== undefined && !seen.has(cur) && Object.hasOwn(ctx.profiles, cur);) {
    seen.add(cur);
    const prof = ctx.profiles[cur]!;
    layers.push({ path: ["profiles", cur], settings: pickSettings(prof) });
    cur = prof.extends;
  }
  layers.push({ path: ["defaults"], settings: ctx.defaults });
  for (let len = key.length; len >= 1; len--) {
    const o = valueAt(overrides, key.slice(0, len));
    if (o !== undefined && o !== null) return [...id.path, ...key];
    for (const layer of layers) {
      const v = valueAt(layer.settings, key.slice(0, len));
      if (v !== undefined && v !== null) return [...layer.path, ...key];
    }
  }
  return [...id.path, ...key];
}

/** candidateHosts lists the hosts a VM may be placed on: its pin (if it runs the hypervisor) or all that do. */
export function candidateHosts(hosts: readonly HostConfig[], vm: ResolvedVm): HostConfig[] {
  const pool = vm.hostPin !== undefined ? hosts.filter((h) => h.name === vm.hostPin) : hosts;
  return pool.filter((h) => hostAccepts(h, vm.hypervisor));
}

/** resolveTemplate derives the VM of an unlisted datapath from the template section. */
export function resolveTemplate(
  ctx: Parameters<typeof resolveSettings>[0],
  t: ParsedConfig["policies"]["unknownDatapath"]["template"],
  dpid: bigint,
  switchPorts: readonly number[] | undefined,
  hosts: readonly HostConfig[],
  at: { locate?: Locate } = {},
  overrides: Parameters<typeof resolveSettings>[2] = {},
): ResolvedVm {
  const tpath: PathSegment[] = ["policies", "unknownDatapath", "template"];
  const name = substitute(t.name, dpidPlaceholders(dpid), [...tpath, "name"]);
  const id: VmIdentity = {
    source: "template",
    dpid,
    name,
    vmId: templateVmId(dpid),
    portPairs: templatePortPairs(t.dataPorts, t.maxDataPorts, switchPorts),
    ...(t.profile !== undefined ? { profile: t.profile } : {}),
    ...(t.host !== undefined ? { hostPin: t.host } : {}),
    own: pickSettings(t),
    path: tpath,
  };
  return resolveAndCheck(ctx, id, hosts, at, overrides);
}
