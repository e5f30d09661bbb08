/**
 * `rfboot init`: writes a new config. Interactive (what RouteFlow users once did with a dialog script):
 * one question at a time with a default in brackets, each answer checked at once and asked again with the
 * reason when it is wrong; several VMs; the file is validated before it is written and never overwrites
 * an existing one without --force. `--yes` takes every answer from flags (defaults for the rest).
 */
import { writeFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import { UsageError } from "../../common/errors.js";
import {
  DPID_FORMS,
  VM_ID_FORMS,
  VM_NAME_RE,
  dpidKey,
  initConfigYaml,
  parseDpidText,
  parseVmId,
  pathProblem,
  templateVmId,
  vmIdProblemText,
  vmIdToMac,
  type InitBoot,
  type InitVm,
} from "../../provisioner/index.js";
import {
  ARCHES,
  HYPERVISOR_NAMES,
  IFNAMSIZ_MAX,
  MAX_DATA_PORTS,
  type Arch,
  type HypervisorName,
} from "../../xmlgen/index.js";

/** Check is one answer's validator: the parsed value, or the reason it was refused. */
type Check<T> = (answer: string) => { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T) => ({ ok: true as const, value });
const no = (reason: string) => ({ ok: false as const, reason });

function intCheck(min: number, max: number, what: string): Check<number> {
  return (a) => {
    if (!/^[0-9]+$/.test(a)) return no(`${what} must be a whole number from ${min} to ${max}`);
    const n = Number(a);
    return n >= min && n <= max ? ok(n) : no(`${what} must be from ${min} to ${max}`);
  };
}

function oneOf<T extends string>(options: readonly T[]): Check<T> {
  return (a) =>
    (options as readonly string[]).includes(a) ? ok(a as T) : no(`answer one of: ${options.join(", ")}`);
}

const pathCheck: Check<string> = (a) => {
  const p = pathProblem(a);
  return p ? no(`path ${p}`) : ok(a);
};

const optionalPathCheck: Check<string | undefined> = (a) =>
  a === "" || a === "-" ? ok(undefined) : pathCheck(a);

/** The answers' validators, shared by the wizard and by --yes flags. */
export const CHECKS = {
  hypervisor: oneOf(HYPERVISOR_NAMES),
  arch: oneOf(ARCHES),
  vcpus: intCheck(1, 4096, "vCPUs"),
  memory: intCheck(16, 16 * 1024 * 1024, "memory (MiB)"),
  dataPorts: intCheck(0, MAX_DATA_PORTS, "data ports"),
  name: ((a) => {
    if (!VM_NAME_RE.test(a))
      return no("a VM name is 1..64 characters of A-Z a-z 0-9 _ . - and does not start with . or -");
    return ok(a);
  }) as Check<string>,
  vmId: ((a) => {
    const r = parseVmId(/^[0-9]+$/.test(a) ? Number(a) : a);
    return r.ok ? ok(r.value) : no(`vm_id ${vmIdProblemText(r.problem)}`);
  }) as Check<bigint>,
  dpid: ((a) => {
    const d = parseDpidText(a);
    return d === undefined ? no(`a datapath id is ${DPID_FORMS}`) : ok(d);
  }) as Check<bigint>,
  path: pathCheck,
  optionalPath: optionalPathCheck,
  yesNo: ((a) =>
    /^(y|yes)$/i.test(a)
      ? ok(true)
      : /^(n|no)$/i.test(a)
        ? ok(false)
        : no("answer y or n")) as Check<boolean>,
} as const;

/** Defaults for the `index`-th VM (0-based): rftest's names and vm_ids for the first six, dpids 5, 6, ... */
export function vmDefaults(index: number, dpid: bigint): { name: string; vmId: bigint } {
  if (index < 6) {
    const letter = "ABCDEF"[index]!;
    const b = 0xa0n + BigInt(index) * 0x10n;
    let vmId = 0x02n;
    for (let i = 0; i < 5; i++) vmId = (vmId << 8n) | b;
    return { name: `rfvm${letter}`, vmId };
  }
  return { name: `rfvm${index + 1}`, vmId: templateVmId(dpid) };
}

/** Asker is how the wizard gets one answer: undefined when the input ended. */
export type Asker = (prompt: string) => Promise<string | undefined>;

/** WizardIO connects the wizard to a terminal (or a script in tests). */
export interface WizardIO {
  readonly ask: Asker;
  readonly say: (line: string) => void;
}

/** ask asks until `check` accepts the answer (empty = the default), printing the reason each time. */
async function askValid<T>(io: WizardIO, prompt: string, def: string, check: Check<T>): Promise<T> {
  for (;;) {
    const raw = await io.ask(`${prompt}${def !== "" ? ` [${def}]` : ""}: `);
    if (raw === undefined)
      throw new UsageError(
        "the wizard was cancelled or its input ended; nothing written (use --yes with flags in scripts)",
      );
    const answer = raw.trim() === "" ? def : raw.trim();
    const r = check(answer);
    if (r.ok) return r.value;
    io.say(`  ! ${r.reason}; try again`);
  }
}

/** bootChoices lists the boot methods the wizard offers for a hypervisor. */
function bootChoices(h: HypervisorName): readonly ("kernel" | "image" | "rootfs")[] {
  if (h === "lxc") return ["rootfs"];
  if (h === "xen-pv") return ["kernel"];
  return ["kernel", "image"];
}

/** askVm runs the questions for one VM; `prev` supplies the defaults after the first VM. */
async function askVm(
  io: WizardIO,
  index: number,
  taken: { names: Set<string>; vmIds: Set<bigint>; dpids: Set<bigint> },
  prev?: InitVm,
): Promise<InitVm> {
  io.say(`VM ${index + 1}:`);
  const hypervisor = await askValid(
    io,
    `  Hypervisor (${HYPERVISOR_NAMES.join(", ")})`,
    prev?.hypervisor ?? "qemu",
    CHECKS.hypervisor,
  );
  const nextDpid = prev ? prev.dpid + 1n : 5n;
  const d = vmDefaults(index, nextDpid);
  const name = await askValid(io, "  VM name", d.name, (a) => {
    const r = CHECKS.name(a);
    if (!r.ok) return r;
    if (taken.names.has(r.value)) return no(`${r.value} is already the name of another VM`);
    return r;
  });
  const vmId = await askValid(
    io,
    `  vm_id: eth0 MAC of the VM (RouteFlow's id)`,
    vmIdToMac(index < 6 ? d.vmId : templateVmId(nextDpid)),
    (a) => {
      const r = CHECKS.vmId(a);
      if (!r.ok) return no(`${r.reason.replace(/^vm_id /, "")} (${VM_ID_FORMS})`);
      if (taken.vmIds.has(r.value)) return no(`${vmIdToMac(r.value)} is already another VM's vm_id`);
      return r;
    },
  );
  const dpid = await askValid(
    io,
    "  Datapath id of its switch (hex like 0x5, or dec:N)",
    dpidKey(nextDpid),
    (a) => {
      const r = CHECKS.dpid(a);
      if (!r.ok) return r;
      if (taken.dpids.has(r.value)) return no(`datapath ${dpidKey(r.value)} already has a VM`);
      return r;
    },
  );
  const dataPorts = await askValid(
    io,
    "  Data ports (eth1..N <-> switch ports 1..N)",
    String(prev?.dataPorts ?? 2),
    (a) => {
      const r = CHECKS.dataPorts(a);
      if (r.ok && r.value > 0 && `${name}.${r.value}`.length > IFNAMSIZ_MAX) {
        io.say(
          `  (note: ${name}.${r.value} is longer than ${IFNAMSIZ_MAX} characters; host devices will be hashed names rf<hex>.N)`,
        );
      }
      return r;
    },
  );
  const arch = await askValid<Arch>(io, "  Architecture", prev?.arch ?? "x86_64", CHECKS.arch);
  const vcpus = await askValid(io, "  vCPUs", String(prev?.vcpus ?? 1), CHECKS.vcpus);
  const memoryMiB = await askValid(io, "  Memory (MiB)", String(prev?.memoryMiB ?? 128), CHECKS.memory);
  const choices = bootChoices(hypervisor);
  const prevKind = prev && choices.includes(prev.boot.type) ? prev.boot.type : choices[0]!;
  const kind =
    choices.length === 1
      ? choices[0]!
      : await askValid(io, `  Boot from (${choices.join(", ")})`, prevKind, oneOf(choices));
  let boot: InitBoot;
  const pb = prev?.boot;
  if (kind === "kernel") {
    const kernel = await askValid(
      io,
      "  Kernel",
      pb?.type === "kernel" ? pb.kernel : "/var/lib/rfboot/guest/vmlinuz",
      CHECKS.path,
    );
    const initrd = await askValid(
      io,
      "  Initrd (- for none)",
      pb?.type === "kernel" ? (pb.initrd ?? "-") : "/var/lib/rfboot/guest/initrd.gz",
      CHECKS.optionalPath,
    );
    boot = { type: "kernel", kernel, ...(initrd ? { initrd } : {}) };
  } else if (kind === "image") {
    const image = await askValid(
      io,
      "  Disk image (base; each VM gets a qcow2 overlay)",
      pb?.type === "image" ? pb.image : "/var/lib/rfboot/images/rfvm.qcow2",
      CHECKS.path,
    );
    boot = { type: "image", image, format: /\.qcow2$/i.test(image) ? "qcow2" : "raw" };
  } else {
    const rootfs = await askValid(
      io,
      "  Root filesystem directory",
      pb?.type === "rootfs" ? pb.rootfs : `/var/lib/rfboot/rootfs/${name}`,
      CHECKS.path,
    );
    boot = { type: "rootfs", rootfs, init: "/sbin/init" };
  }
  return { hypervisor, name, vmId, dpid, dataPorts, arch, vcpus, memoryMiB, boot };
}

/** runWizard asks for one or more VMs and returns them. */
export async function runWizard(io: WizardIO): Promise<InitVm[]> {
  io.say("rfboot init: a config for RouteFlow VMs booted on demand. Enter takes the [default].");
  const vms: InitVm[] = [];
  const taken = { names: new Set<string>(), vmIds: new Set<bigint>(), dpids: new Set<bigint>() };
  for (;;) {
    const vm = await askVm(io, vms.length, taken, vms[vms.length - 1]);
    vms.push(vm);
    taken.names.add(vm.name);
    taken.vmIds.add(vm.vmId);
    taken.dpids.add(vm.dpid);
    if (!(await askValid(io, "Add another VM? (y/n)", "n", CHECKS.yesNo))) return vms;
  }
}

/** InitOptions are the flags of `rfboot init`. */
export interface InitOptions {
  readonly out?: string;
  readonly force?: boolean;
  readonly yes?: boolean;
  readonly hypervisor?: string;
  readonly name?: string;
  readonly vmId?: string;
  readonly arch?: string;
  readonly vcpus?: string;
  readonly memory?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly image?: string;
  readonly rootfs?: string;
  readonly dataPorts?: string;
  readonly dpid?: string;
}

function flag<T>(value: string | undefined, def: string, check: Check<T>, name: string): T {
  const r = check(value ?? def);
  if (!r.ok) throw new UsageError(`--${name} ${JSON.stringify(value)}: ${r.reason}`);
  return r.value;
}

/** vmFromFlags builds the one VM of `init --yes` from flags, with the wizard's defaults for the rest. */
export function vmFromFlags(o: InitOptions): InitVm {
  const hypervisor = flag(o.hypervisor, "qemu", CHECKS.hypervisor, "hypervisor");
  const d = vmDefaults(0, 5n);
  const name = flag(o.name, d.name, CHECKS.name, "name");
  const vmId = flag(o.vmId, vmIdToMac(d.vmId), CHECKS.vmId, "vm-id");
  const dpid = flag(o.dpid, "0x5", CHECKS.dpid, "dpid");
  const dataPorts = flag(o.dataPorts, "2", CHECKS.dataPorts, "data-ports");
  const arch = flag(o.arch, "x86_64", CHECKS.arch, "arch");
  const vcpus = flag(o.vcpus, "1", CHECKS.vcpus, "vcpus");
  const memoryMiB = flag(o.memory, "128", CHECKS.memory, "memory");
  const given = [
    o.kernel !== undefined && "--kernel",
    o.image !== undefined && "--image",
    o.rootfs !== undefined && "--rootfs",
  ].filter(Boolean);
  if (given.length > 1) throw new UsageError(`give only one of ${given.join(", ")}`);
  if (o.initrd !== undefined && o.image !== undefined)
    throw new UsageError("--initrd goes with --kernel, not --image");
  let boot: InitBoot;
  if (hypervisor === "lxc" || o.rootfs !== undefined) {
    if (hypervisor !== "lxc") throw new UsageError("--rootfs is for --hypervisor lxc");
    if (o.kernel !== undefined || o.image !== undefined)
      throw new UsageError("lxc containers boot from --rootfs, not a kernel or image");
    boot = {
      type: "rootfs",
      rootfs: flag(o.rootfs, `/var/lib/rfboot/rootfs/${name}`, CHECKS.path, "rootfs"),
      init: "/sbin/init",
    };
  } else if (o.image !== undefined) {
    if (hypervisor === "xen-pv") throw new UsageError("--image is not offered for xen-pv; use --kernel");
    const image = flag(o.image, "", CHECKS.path, "image");
    boot = { type: "image", image, format: /\.qcow2$/i.test(image) ? "qcow2" : "raw" };
  } else {
    const kernel = flag(o.kernel, "/var/lib/rfboot/guest/vmlinuz", CHECKS.path, "kernel");
    const defInitrd = o.kernel === undefined ? "/var/lib/rfboot/guest/initrd.gz" : "-";
    const initrd = flag(o.initrd, defInitrd, CHECKS.optionalPath, "initrd");
    boot = { type: "kernel", kernel, ...(initrd ? { initrd } : {}) };
  }
  return { hypervisor, name, vmId, dpid, dataPorts, arch, vcpus, memoryMiB, boot };
}

/** terminalIO wires the wizard to a readline interface on `input`/`output` (works over a TTY and a pipe). */
export function terminalIO(input: Readable, output: Writable): WizardIO & { close(): void } {
  const rl = createInterface({ input, output, terminal: (output as { isTTY?: boolean }).isTTY === true });
  // Lines are queued, so answers typed (or piped) ahead of their question are not lost.
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  let closed = false;
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on("close", () => {
    closed = true;
    for (const w of waiting.splice(0)) w(undefined);
  });
  rl.on("SIGINT", () => {
    output.write("\n");
    rl.close();
  });
  // Over a pipe nothing echoes the answer: end the prompt's line so the transcript stays readable.
  const tty = (output as { isTTY?: boolean }).isTTY === true;
  const endLine = (line: string | undefined) => {
    if (!tty && line !== undefined) output.write("\n");
    return line;
  };
  return {
    ask: async (prompt) => {
      rl.setPrompt(prompt);
      rl.prompt();
      const queued = lines.shift();
      if (queued !== undefined) return endLine(queued);
      if (closed) return undefined;
      return endLine(await new Promise<string | undefined>((res) => waiting.push(res)));
    },
    say: (line) => output.write(`${line}\n`),
    close: () => rl.close(),
  };
}

async function writeConfig(path: string, yaml: string, force: boolean): Promise<void> {
  try {
    // 0600: a config may carry MongoDB credentials in mongo.uri.
    await writeFile(path, yaml, { flag: force ? "w" : "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new UsageError(`${path} exists; pass --force to overwrite it (nothing written)`);
    }
    throw err;
  }
}

/** runInit does the whole command with the given streams; returns the file written. */
export async function runInit(o: InitOptions, input: Readable, output: Writable): Promise<string> {
  let vms: InitVm[];
  let out = o.out;
  if (o.yes) {
    vms = [vmFromFlags(o)];
    out ??= "rfboot.yaml";
  } else {
    const io = terminalIO(input, output);
    try {
      vms = await runWizard(io);
      out ??= await askValid(io, "Write the config to", "rfboot.yaml", (a) =>
        a.includes("\0") ? no("not a file name") : ok(a),
      );
    } finally {
      io.close();
    }
  }
  const { yaml } = initConfigYaml(vms);
  await writeConfig(out, yaml, o.force === true);
  output.write(
    `wrote ${out} (${vms.length} VM${vms.length > 1 ? "s" : ""}); check it with: rfboot plan --config ${out}\n`,
  );
  return out;
}

/** registerInit adds `rfboot init`. */
export function registerInit(program: Command): void {
  program
    .command("init")
    .description("write a new config: an interactive wizard, or --yes with flags")
    .option("-o, --out <file>", "config file to write (default rfboot.yaml)")
    .option("-f, --force", "overwrite --out if it exists")
    .option("-y, --yes", "ask nothing: take the answers from the flags below (defaults for the rest)")
    .option("--hypervisor <name>", `${HYPERVISOR_NAMES.join(", ")} (default qemu)`)
    .option("--name <name>", "VM name (default rfvmA)")
    .option("--vm-id <mac>", "RouteFlow vm_id = eth0 MAC (default 02:a0:a0:a0:a0:a0)")
    .option("--dpid <dpid>", "datapath id of the switch (default 0x5)")
    .option("--data-ports <n>", "data NICs eth1..N <-> switch ports 1..N (default 2)")
    .option("--arch <arch>", "guest architecture (default x86_64)")
    .option("--vcpus <n>", "vCPUs (default 1)")
    .option("--memory <mib>", "memory in MiB (default 128)")
    .option("--kernel <path>", "direct kernel boot (default /var/lib/rfboot/guest/vmlinuz)")
    .option("--initrd <path>", "initrd for --kernel (- for none)")
    .option("--image <path>", "boot a disk image instead (qcow2 overlay per VM)")
    .option("--rootfs <path>", "lxc: the container's root filesystem")
    .action(async (opts: InitOptions) => {
      await runInit(opts, process.stdin, process.stdout);
    });
}
