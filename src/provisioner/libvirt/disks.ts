/**
 * Preparing a VM's disk: a qcow2 overlay on a base image (qemu-img) or a full copy, built under a part-file
 * name and renamed into place, so a crash never leaves a half-written disk at the final path; and the sweep
 * of part files that a killed rfboot left behind.
 */
import { randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import { access, chmod, chown, copyFile, readdir, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { RfbootError, VirshError } from "../../common/errors.js";
import { processAlive } from "../../common/proc.js";
import { processes, type ProcessSeam } from "./process.js";
import { lastErrorLine } from "./virsh.js";

/** DiskPlan says how a VM's disk is prepared: a qcow2 overlay on a base, a full copy, or nothing. */
export type DiskPlan =
  | { kind: "none" }
  | {
      kind: "overlay" | "copy";
      /** base is the image the overlay points at (or that is copied); never modified or deleted. */
      base: string;
      /** format is the base image's format (`-F` of qemu-img), e.g. qcow2 or raw. */
      format: string;
      /** path is the VM's own disk; it holds the VM's state and is never overwritten once it exists. */
      path: string;
      /** mode of a created file (default 0o640); owner optional (e.g. libvirt-qemu:kvm). */
      mode?: number;
      owner?: { uid: number; gid: number };
    };

/**
 * diskPlanFrom adapts the config's per-host disk plan (`{kind, base, baseFormat, path}`) to the lifecycle's:
 * `format` here is the base's format (qemu-img's `-F`). Kind none uses the base in place: nothing to prepare.
 */
export function diskPlanFrom(p: {
  readonly kind: "overlay" | "copy" | "none";
  readonly base: string;
  readonly baseFormat: string;
  readonly path: string;
}): DiskPlan {
  if (p.kind === "none") return { kind: "none" };
  return { kind: p.kind, base: p.base, format: p.baseFormat, path: p.path };
}

/** PART_SUFFIX ends the temporary name a disk is built under before its atomic rename to the final path. */
export const PART_SUFFIX = ".rfboot-part";

/**
 * partFileName names a disk under construction `.<hostname>.<pid>.<random>.rfboot-part`: the machine and
 * process that build it are in the name, so a later sweep can tell a crashed builder's leftover from a file
 * another live rfboot is still writing (a shared storage directory).
 */
export function partFileName(host = hostname(), pid = process.pid): string {
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, "_");
  return `.${safeHost}.${pid}.${randomBytes(6).toString("hex")}${PART_SUFFIX}`;
}

/**
 * sweepPartFiles removes the half-built disks (`*.rfboot-part`) that a killed rfboot left in `dir`: those
 * made on this machine by a process that no longer runs, and those of the old unqualified naming
 * (`.<random>.rfboot-part`). Files of another machine, or of a live process, are left alone. Returns the
 * paths removed. A missing directory is not an error.
 */
export async function sweepPartFiles(dir: string, host = hostname()): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, "_");
  const removed: string[] = [];
  for (const n of names) {
    if (!n.startsWith(".") || !n.endsWith(PART_SUFFIX)) continue;
    const m = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.rfboot-part$/.exec(n);
    const stale = m
      ? m[1] === safeHost && Number(m[2]) !== process.pid && !processAlive(Number(m[2]))
      : /^\.[0-9a-f]{12}\.rfboot-part$/.test(n);
    if (!stale) continue;
    await rm(join(dir, n), { force: true });
    removed.push(join(dir, n));
  }
  return removed;
}

/** ToolRunner runs a non-virsh tool (qemu-img); a seam so tests can assert the exact arguments. */
export type ToolRunner = (
  cmd: string,
  args: string[],
  opts?: { timeoutMs?: number },
) => Promise<{ stdout: string; stderr: string }>;

/** createToolRunner runs tools through the process seam (C locale, 60 s default timeout); failures become VirshError. */
export function createToolRunner(seam: ProcessSeam = processes): ToolRunner {
  return async (cmd, args, opts = {}) => {
    const r = await seam.run({
      file: cmd,
      args,
      timeoutMs: opts.timeoutMs ?? 60_000,
      classify: (o) => {
        if (!o.failed) return undefined;
        const stderr = withoutFinalNewline(o.stderr) || o.summary;
        return new VirshError(
          `${cmd} ${args.join(" ")} failed: ${lastErrorLine(stderr)}; check the image paths and permissions`,
          o.timedOut ? "timeout" : "other",
          [cmd, ...args],
          stderr,
          o.exitCode,
        );
      },
    });
    return { stdout: withoutFinalNewline(r.stdout), stderr: withoutFinalNewline(r.stderr) };
  };
}

/** defaultToolRunner runs tools as real children. */
export const defaultToolRunner: ToolRunner = createToolRunner();

/** A tool's output is handed on without its final line ending, as a one-line answer reads best. */
function withoutFinalNewline(text: string): string {
  return text.replace(/\r?\n$/, "");
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * prepareDisk creates the VM's overlay (`qemu-img create -f qcow2 -b BASE -F FMT PATH`) or copy when it does
 * not exist yet; an existing file is the VM's state and is kept. Returns true when it created the file.
 * `tools` runs qemu-img (the process seam by default).
 */
export async function prepareDisk(
  disk: DiskPlan | undefined,
  tools: ToolRunner = defaultToolRunner,
): Promise<boolean> {
  if (!disk || disk.kind === "none") return false;
  if (await exists(disk.path)) return false;
  if (!(await exists(disk.base))) {
    throw new RfbootError(
      `base image ${disk.base} for ${disk.path} does not exist; fix the VM's image path in the config`,
    );
  }
  // Build under a temporary name then rename: a crash never leaves a half-written disk at the final path.
  const part = join(dirname(disk.path), partFileName());
  try {
    if (disk.kind === "overlay") {
      await tools("qemu-img", ["create", "-q", "-f", "qcow2", "-b", disk.base, "-F", disk.format, part]);
    } else {
      await copyFile(disk.base, part, fsc.COPYFILE_FICLONE);
    }
    await chmod(part, disk.mode ?? 0o640);
    if (disk.owner) await chown(part, disk.owner.uid, disk.owner.gid);
    // link-free "create if absent": if another attempt won the race, keep its file and drop ours.
    if (await exists(disk.path)) {
      await rm(part, { force: true });
      return false;
    }
    await rename(part, disk.path);
    return true;
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
}

/** fileMode returns a file's permission bits (for tests and diagnostics). */
export async function fileMode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}
