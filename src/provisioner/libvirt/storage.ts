/**
 * VM storage on one libvirt host, through libvirt's storage API only, so that a host on this machine and one
 * reached over `qemu+tcp://` take the same path: the host's dir pool (and one for its console logs) ensured
 * on first use; per-VM overlays and copies made as volumes of that pool; base images, kernels and initrds
 * found per host (at their paths, or as volumes of the pool, uploaded once and verified when allowed); the
 * volumes half-built by a killed rfboot swept at start.
 *
 * libvirt cannot rename a volume, so a volume cannot be built under a temporary name the way a file can.
 * Instead a small marker volume `rfboot-part.<machine>.<pid>.<random>.<target>` is created before the target
 * and deleted after it is complete: a marker whose builder (this machine, a pid that no longer runs) is gone
 * means its target may be half-built, and the sweep deletes both.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join, posix } from "node:path";
import { StorageError, VirshError } from "../../common/errors.js";
import { redactUri, silentLogger, type Logger } from "../../common/log.js";
import { processAlive } from "../../common/proc.js";
import {
  isAlreadyExists,
  isPoolInactive,
  isPoolMissing,
  isUnsupported,
  isVolumeExists,
  isVolumeMissing,
  type VirshRunner,
} from "./virsh.js";
import { XmlFiles } from "./xml-files.js";

/** DiskPlan says how a VM's disk is prepared on its host: a qcow2 overlay on a base, a full copy, or nothing. */
export type DiskPlan =
  | { kind: "none" }
  | {
      kind: "overlay" | "copy";
      /** base is the image on the host (a volume of the pool, or a plain path); never modified or deleted. */
      base: string;
      /** format is the base image's format (qcow2, raw). */
      format: string;
      /** path is the VM's own disk, a volume of the host's pool; once it exists it is the VM's state. */
      path: string;
    };

/**
 * diskPlanFrom adapts the config's per-host disk plan (`{kind, base, baseFormat, path}`) to the lifecycle's:
 * `format` here is the base's format. Kind none uses the base in place: nothing to prepare.
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

/** StorageSpec is a host's storage configuration (the config's host fields of the same names). */
export interface StorageSpec {
  /** pool is the dir pool of the VMs' disks (and, with images: pool, of their images); target `storageDir`. */
  readonly pool: string;
  readonly storageDir: string;
  /** consoleLogDir is made on the host as the target of the dir pool `<pool>-console`. */
  readonly consoleLogDir: string;
  /** images: path, files the domain reads are at their configured paths; pool, volumes of `pool`. */
  readonly images: "path" | "pool";
  /** upload: with images pool, a missing volume is uploaded once from the configured local file. */
  readonly upload: boolean;
}

/** ArtifactRole names what a file the domain reads is for (in messages). */
export type ArtifactRole = "disk image" | "kernel" | "initrd";

/** Artifact is one file a domain reads: its configured (local) path, what it is, and its format. */
export interface Artifact {
  readonly path: string;
  readonly role: ArtifactRole;
  /** format of an image (qcow2, raw); kernels and initrds are raw. */
  readonly format?: string;
}

/** ArtifactFinding is what `inspect` found for one artifact, without changing anything. */
export interface ArtifactFinding extends Artifact {
  /** volume is the volume name looked up (images: pool). */
  readonly volume?: string;
  /** status: found; missing (a blocking problem); or missing but uploaded at first use (upload: true). */
  readonly status: "found" | "missing" | "will-upload" | "at-path";
  /** hostPath is where the host has it, when found. */
  readonly hostPath?: string;
}

/** StorageInspection is a read-only look at a host's storage: the pools and every artifact. */
export interface StorageInspection {
  readonly host: string;
  readonly pool: string;
  /** poolState: running; missing or inactive (rfboot defines/starts it at first use); or an error text. */
  readonly poolState: "running" | "missing" | "inactive" | "other";
  readonly poolDetail: string;
  readonly artifacts: readonly ArtifactFinding[];
  /** problems are one line per blocking finding (empty: nothing blocks a VM here). */
  readonly problems: readonly string[];
}

/** MARKER_PREFIX begins the name of a marker volume (see the module comment). */
export const MARKER_PREFIX = "rfboot-part.";

const MARKER_RE = /^rfboot-part\.([A-Za-z0-9_-]+)\.(\d+)\.([0-9a-f]{12})\.(.+)$/;

const safeHost = (h: string) => h.replace(/[^A-Za-z0-9_-]/g, "_");

/** markerName names the marker of a volume `target` being built by process `pid` of machine `host`. */
export function markerName(target: string, host = hostname(), pid = process.pid): string {
  return `${MARKER_PREFIX}${safeHost(host)}.${pid}.${randomBytes(6).toString("hex")}.${target}`;
}

/** parseMarker reads a marker volume's name, or undefined for any other volume. */
export function parseMarker(name: string): { host: string; pid: number; target: string } | undefined {
  const m = MARKER_RE.exec(name);
  return m ? { host: m[1]!, pid: Number(m[2]), target: m[4]! } : undefined;
}

/** parseVolList reads the names of `virsh vol-list POOL` (a header, a rule, then `NAME  PATH` rows). */
export function parseVolList(stdout: string): string[] {
  const lines = stdout.split("\n");
  const rule = lines.findIndex((l) => /^-{3,}/.test(l.trim()));
  return lines
    .slice(rule + 1)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.length > 0);
}

/** poolTarget reads a pool's target path from `virsh pool-dumpxml`. */
export function poolTarget(xml: string): string | undefined {
  const t = /<target>\s*<path>([^<]*)<\/path>/.exec(xml)?.[1];
  return t === undefined ? undefined : unescapeXml(t);
}

/** CONFLICT_RE finds the pool that already has a target (libvirt refuses a second pool over it). */
const CONFLICT_RE = /Storage source conflict with pool: '([^']+)'/;

function conflictingPool(err: unknown): string | undefined {
  return err instanceof VirshError ? CONFLICT_RE.exec(err.stderr)?.[1] : undefined;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/'/g, "&apos;");
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&apos;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

const norm = (p: string) => posix.normalize(p).replace(/\/+$/, "") || "/";

/** sha256File hashes a local file without reading it into memory whole. */
export async function sha256File(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    size += (chunk as Buffer).length;
    h.update(chunk as Buffer);
  }
  return { size, sha256: h.digest("hex") };
}

/** HostStorageOptions configure the storage of one host. */
export interface HostStorageOptions {
  host: { name: string; uri: string };
  spec: StorageSpec;
  run: VirshRunner;
  log?: Logger;
  /** timeoutMs of a quick call (default 30 s). */
  timeoutMs?: number;
  /** transferTimeoutMs of a call that moves an image's bytes: upload, download, clone, copy (default 30 min). */
  transferTimeoutMs?: number;
  /** machine names this machine in markers (default the hostname). */
  machine?: string;
  /** alive says whether a local pid runs (default: /proc, a zombie counts as dead). */
  alive?: (pid: number) => boolean;
}

/**
 * HostStorage is the storage of one libvirt host. Pools are ensured once and again after any failed
 * storage call (a restarted libvirtd may leave a pool inactive); uploads of one volume share one attempt.
 */
export class HostStorage {
  readonly host: { name: string; uri: string };
  readonly spec: StorageSpec;
  private readonly run: VirshRunner;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly transferMs: number;
  private readonly machine: string;
  private readonly alive: (pid: number) => boolean;
  private readonly xmlFiles = new XmlFiles("rfboot-vol-");
  private ensured: Promise<void> | undefined;
  /** pool is the pool that serves `storageDir`: the configured one, or one that already had that target. */
  private pool: string;
  private readonly uploads = new Map<string, Promise<string>>();

  constructor(o: HostStorageOptions) {
    this.host = o.host;
    this.spec = o.spec;
    this.run = o.run;
    this.log = o.log ?? silentLogger;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.transferMs = o.transferTimeoutMs ?? 30 * 60_000;
    this.machine = safeHost(o.machine ?? hostname());
    this.alive = o.alive ?? processAlive;
    this.pool = o.spec.pool;
  }

  /** consolePool names the pool whose target is the console log directory (the disk pool if they coincide). */
  get consolePool(): string {
    return norm(this.spec.consoleLogDir) === norm(this.spec.storageDir)
      ? this.spec.pool
      : `${this.spec.pool}-console`;
  }

  private virsh(args: string[], transfer = false): Promise<{ stdout: string; stderr: string }> {
    return this.run(this.host.uri, args, { timeoutMs: transfer ? this.transferMs : this.timeoutMs });
  }

  private where(): string {
    return `host ${this.host.name} (${redactUri(this.host.uri)})`;
  }

  /** ready ensures the disk pool and the console log directory's pool; cached until a storage call fails. */
  ready(): Promise<void> {
    this.ensured ??= (async () => {
      this.pool = await this.ensurePool(this.spec.pool, this.spec.storageDir);
      if (this.consolePool !== this.spec.pool)
        await this.ensurePool(this.consolePool, this.spec.consoleLogDir);
    })().catch((e: unknown) => {
      this.ensured = undefined;
      throw e;
    });
    return this.ensured;
  }

  /**
   * ensurePool makes pool `name` (type dir, target `target`) exist and run: defined, built (which creates
   * the directory), started and marked autostart when missing; started when inactive. A pool of that name
   * with another target is an error (volumes would land elsewhere than the domain XML says); a target that
   * another pool already has is served by that pool.
   */
  private async ensurePool(name: string, target: string, depth = 0): Promise<string> {
    let info: string;
    try {
      info = (await this.virsh(["pool-info", name])).stdout;
    } catch (e) {
      if (!isPoolMissing(e)) throw e;
      try {
        await this.virsh(["pool-define-as", name, "dir", "--target", target]);
      } catch (d) {
        // Defined meanwhile (another host entry on the same libvirtd): check it as found.
        if (isAlreadyExists(d) && depth === 0) return this.ensurePool(name, target, depth + 1);
        const other = conflictingPool(d);
        if (other === undefined || depth > 0) throw d;
        this.log.info({ host: this.host.name, pool: other, target }, "directory already served by a pool");
        return this.ensurePool(other, target, depth + 1);
      }
      await this.virsh(["pool-build", name]);
      await this.startPool(name);
      await this.virsh(["pool-autostart", name]);
      this.log.info({ host: this.host.name, pool: name, target }, "storage pool defined and started");
      return name;
    }
    const have = poolTarget((await this.virsh(["pool-dumpxml", name])).stdout);
    if (have !== undefined && norm(have) !== norm(target)) {
      throw new StorageError(
        `storage pool ${name} on ${this.where()} has target ${have}, not ${target} as the config says; ` +
          `set the host's pool to another name, or storageDir/consoleLogDir to ${have}, or remove the pool ` +
          `(virsh -c ${redactUri(this.host.uri)} pool-destroy ${name}; pool-undefine ${name})`,
        "mismatch",
        this.host.name,
        name,
      );
    }
    if (/^State:\s+inactive/m.test(info)) {
      // The directory may be gone with the pool stopped: build makes it again (and leaves an existing one).
      await this.virsh(["pool-build", name]);
      await this.startPool(name);
      this.log.info({ host: this.host.name, pool: name }, "storage pool was inactive: started");
    }
    return name;
  }

  /** startPool starts a pool; one started meanwhile (another host entry on the same libvirtd) is fine. */
  private async startPool(name: string): Promise<void> {
    try {
      await this.virsh(["pool-start", name]);
    } catch (e) {
      if (!(e instanceof VirshError && /pool '[^']*' is (already )?active/i.test(e.stderr))) throw e;
    }
  }

  /** withPool runs `fn` with the pools ensured; a failure makes the next call ensure them again, and a pool found missing or stopped is ensured and `fn` retried once. */
  private async withPool<T>(fn: () => Promise<T>): Promise<T> {
    await this.ready();
    try {
      return await fn();
    } catch (e) {
      this.ensured = undefined;
      if (!isPoolMissing(e) && !isPoolInactive(e)) throw e;
      await this.ready();
      return fn();
    }
  }

  /** volumePath returns a volume's path on the host, or undefined when the pool has no such volume. */
  private async volumePath(pool: string, volume: string): Promise<string | undefined> {
    try {
      return (await this.virsh(["vol-path", "--pool", pool, volume])).stdout.trim();
    } catch (e) {
      if (isVolumeMissing(e)) return undefined;
      throw e;
    }
  }

  /** findVolume is volumePath after a pool refresh when the first look misses (files copied into the directory). */
  private async findVolume(volume: string): Promise<string | undefined> {
    const pool = this.pool;
    const first = await this.volumePath(pool, volume);
    if (first !== undefined) return first;
    await this.virsh(["pool-refresh", pool]);
    return this.volumePath(pool, volume);
  }

  private async deleteVolume(volume: string): Promise<boolean> {
    try {
      await this.virsh(["vol-delete", "--pool", this.pool, volume]);
      return true;
    } catch (e) {
      if (isVolumeMissing(e)) return false;
      throw e;
    }
  }

  /** withMarker brackets the building of volume `target` by its marker (see the module comment). */
  private async withMarker<T>(target: string, build: () => Promise<T>): Promise<T> {
    const marker = markerName(target, this.machine);
    await this.virsh(["vol-create-as", this.pool, marker, "0", "--format", "raw"]);
    try {
      return await build();
    } finally {
      await this.deleteVolume(marker).catch((e: unknown) =>
        this.log.warn({ host: this.host.name, marker, err: e }, "marker volume not deleted; the sweep will"),
      );
    }
  }

  /**
   * locate returns where the host has a file the domain reads. images: path, the configured path as is;
   * images: pool, the path of the pool's volume named after the file (`vol-path`), uploaded from the local
   * file first when missing and `upload` is on. A missing volume otherwise is a StorageError saying how to
   * put it there.
   */
  async locate(a: Artifact): Promise<string> {
    if (this.spec.images === "path") return a.path;
    const volume = posix.basename(a.path);
    return this.withPool(async () => {
      const found = await this.findVolume(volume);
      if (found !== undefined) return found;
      if (!this.spec.upload) throw this.missing(a, volume);
      return this.uploadOnce(a, volume);
    });
  }

  private missing(a: Artifact, volume: string): StorageError {
    const pool = this.pool;
    const uri = redactUri(this.host.uri);
    return new StorageError(
      `${a.role} ${a.path}: ${this.where()} has no volume ${volume} in pool ${pool}; upload it ` +
        `(virsh -c ${uri} vol-create-as ${pool} ${volume} SIZE --format ${a.format ?? "raw"} && ` +
        `virsh -c ${uri} vol-upload --pool ${pool} ${volume} ${a.path}) or set upload: true for the host`,
      "missing",
      this.host.name,
      pool,
      volume,
    );
  }

  private uploadOnce(a: Artifact, volume: string): Promise<string> {
    let p = this.uploads.get(volume);
    if (!p) {
      p = this.upload(a, volume).finally(() => this.uploads.delete(volume));
      this.uploads.set(volume, p);
    }
    return p;
  }

  /**
   * upload creates volume `volume` with the local file's size and format, uploads the file and verifies
   * it by downloading it again (size and SHA-256). Any failure deletes the volume: a partial or corrupt
   * upload must not be taken for the image later.
   */
  private async upload(a: Artifact, volume: string): Promise<string> {
    const pool = this.pool;
    const fail = (why: string, cause?: unknown) =>
      new StorageError(
        `${a.role} ${a.path}: upload to volume ${volume} of pool ${pool} on ${this.where()} failed: ${why}`,
        "upload",
        this.host.name,
        pool,
        volume,
        cause === undefined ? undefined : { cause },
      );
    let local: { size: number; sha256: string };
    try {
      local = await sha256File(a.path);
    } catch (e) {
      throw fail(
        `the local file cannot be read (${(e as Error).message}); put it there or upload it by hand`,
        e,
      );
    }
    return this.withMarker(volume, async () => {
      try {
        await this.virsh(["vol-create-as", pool, volume, String(local.size), "--format", a.format ?? "raw"]);
      } catch (e) {
        // Another rfboot made it meanwhile: its volume is used (it verifies its own upload).
        if (isVolumeExists(e)) {
          const p = await this.volumePath(pool, volume);
          if (p !== undefined) return p;
        }
        throw e;
      }
      try {
        await this.virsh(["vol-upload", "--pool", pool, volume, a.path], true);
        const got = await this.downloadDigest(volume);
        if (got.size !== local.size || got.sha256 !== local.sha256) {
          throw fail(
            `verification mismatch: the host holds ${got.size} bytes with SHA-256 ${got.sha256}, the local ` +
              `file is ${local.size} bytes with SHA-256 ${local.sha256}; the volume was deleted`,
          );
        }
      } catch (e) {
        await this.deleteVolume(volume).catch(() => undefined);
        if (e instanceof StorageError) throw e;
        if (isUnsupported(e)) {
          throw fail(
            "this host's libvirt driver cannot upload or download volumes; put the volume there yourself",
            e,
          );
        }
        throw fail(`${(e as Error).message}; the volume was deleted`, e);
      }
      const path = await this.volumePath(pool, volume);
      if (path === undefined) throw fail("the volume vanished after its upload");
      this.log.info({ host: this.host.name, pool, volume, bytes: local.size }, "image uploaded and verified");
      return path;
    });
  }

  /** downloadDigest downloads a volume to a private temporary file and hashes it. */
  private async downloadDigest(volume: string): Promise<{ size: number; sha256: string }> {
    const dir = await mkdtemp(join(tmpdir(), "rfboot-verify-"));
    try {
      const file = join(dir, "volume");
      await this.virsh(["vol-download", "--pool", this.pool, volume, file], true);
      return await sha256File(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * prepareDisk creates the VM's overlay or copy as a volume of the pool when it does not exist yet; an
   * existing volume is the VM's state and is kept. Returns true when it created the volume.
   * Overlay on a volume of the pool: `vol-create-as` with `--backing-vol`, the base's capacity; on a plain
   * path: `vol-create` with a backingStore (capacity 0: qemu-img takes the backing file's size).
   * Copy of a volume: `vol-clone`; of a plain path: `vol-create-from` out of a transient pool over the
   * base's directory.
   */
  async prepareDisk(disk: DiskPlan | undefined): Promise<boolean> {
    if (!disk || disk.kind === "none") return false;
    const volume = posix.basename(disk.path);
    if (norm(posix.dirname(disk.path)) !== norm(this.spec.storageDir)) {
      throw new StorageError(
        `disk ${disk.path} is not in pool ${this.pool} (target ${this.spec.storageDir}) on ${this.where()}`,
        "mismatch",
        this.host.name,
        this.pool,
        volume,
      );
    }
    return this.withPool(async () => {
      const pool = this.pool;
      if ((await this.volumePath(pool, volume)) !== undefined) return false;
      const inPool = norm(posix.dirname(disk.base)) === norm(this.spec.storageDir);
      const baseVol = posix.basename(disk.base);
      let capacity: string | undefined;
      if (inPool) {
        if ((await this.findVolume(baseVol)) === undefined) {
          throw new StorageError(
            `base image ${disk.base} of disk ${volume}: ${this.where()} has no volume ${baseVol} in pool ${pool}`,
            "missing",
            this.host.name,
            pool,
            baseVol,
          );
        }
        capacity = /^Capacity:\s+(\d+) bytes/m.exec(
          (await this.virsh(["vol-info", "--bytes", "--pool", pool, baseVol])).stdout,
        )?.[1];
      }
      return this.withMarker(volume, async () => {
        try {
          if (disk.kind === "overlay" && inPool) {
            await this.virsh([
              "vol-create-as",
              pool,
              volume,
              capacity ?? "0",
              "--format",
              "qcow2",
              "--backing-vol",
              baseVol,
              "--backing-vol-format",
              disk.format,
            ]);
          } else if (disk.kind === "overlay") {
            const xml =
              `<volume><name>${escapeXml(volume)}</name><capacity>0</capacity>` +
              `<target><format type='qcow2'/></target>` +
              `<backingStore><path>${escapeXml(disk.base)}</path><format type='${escapeXml(disk.format)}'/></backingStore></volume>`;
            await this.xmlFiles.withFile(volume, xml, (f) => this.virsh(["vol-create", pool, f]));
          } else if (inPool) {
            await this.virsh(["vol-clone", "--pool", pool, baseVol, volume], true);
          } else {
            await this.copyFromPath(disk.base, disk.format, volume);
          }
        } catch (e) {
          // Another attempt made it in between: keep its volume, it may already hold the VM's state.
          if (isVolumeExists(e)) return false;
          await this.deleteVolume(volume).catch(() => undefined);
          throw e;
        }
        this.log.info({ host: this.host.name, pool, volume, kind: disk.kind }, "VM disk volume created");
        return true;
      });
    });
  }

  /** copyFromPath copies a base that is no volume of the pool through a transient pool over its directory. */
  private async copyFromPath(base: string, format: string, volume: string): Promise<void> {
    let src = `rfboot-src-${randomBytes(4).toString("hex")}`;
    let transient = false;
    try {
      await this.virsh(["pool-create-as", src, "dir", "--target", posix.dirname(base)]);
      transient = true;
    } catch (e) {
      const other = conflictingPool(e);
      if (other === undefined) throw e;
      src = other;
      await this.virsh(["pool-refresh", src]);
    }
    try {
      const name = posix.basename(base);
      const info = await this.virsh(["vol-info", "--bytes", "--pool", src, name]).catch((e: unknown) => {
        if (!isVolumeMissing(e)) throw e;
        throw new StorageError(
          `base image ${base} of disk ${volume} does not exist on ${this.where()}`,
          "missing",
          this.host.name,
          src,
          name,
        );
      });
      const capacity = /^Capacity:\s+(\d+) bytes/m.exec(info.stdout)?.[1] ?? "0";
      const xml =
        `<volume><name>${escapeXml(volume)}</name><capacity>${capacity}</capacity>` +
        `<target><format type='${escapeXml(format)}'/></target></volume>`;
      await this.xmlFiles.withFile(volume, xml, (f) =>
        this.virsh(["vol-create-from", this.pool, f, "--inputpool", src, name], true),
      );
    } finally {
      if (transient) await this.virsh(["pool-destroy", src]).catch(() => undefined);
    }
  }

  /** removeDisk deletes the VM's rfboot-made volume (never the base); a missing one is not an error. */
  async removeDisk(disk: DiskPlan | undefined): Promise<boolean> {
    if (!disk || disk.kind === "none") return false;
    return this.withPool(() => this.deleteVolume(posix.basename(disk.path)));
  }

  /**
   * sweep deletes the volumes half-built by a killed rfboot of this machine (markers of pids that no longer
   * run) and their markers; a target that a live builder's marker also names is left alone. Returns the
   * volumes deleted.
   */
  async sweep(): Promise<string[]> {
    return this.withPool(async () => {
      const names = parseVolList((await this.virsh(["vol-list", this.pool])).stdout);
      const markers = names.flatMap((n) => {
        const m = parseMarker(n);
        return m ? [{ name: n, ...m }] : [];
      });
      const live = (m: { host: string; pid: number }) =>
        m.host !== this.machine || m.pid === process.pid || this.alive(m.pid);
      const busy = new Set(markers.filter(live).map((m) => m.target));
      const removed: string[] = [];
      for (const m of markers) {
        if (live(m)) continue;
        if (!busy.has(m.target) && (await this.deleteVolume(m.target))) removed.push(m.target);
        await this.deleteVolume(m.name);
      }
      return removed;
    });
  }

  /**
   * inspect looks at the host's storage without changing it (a pool refresh aside): the pool's state, and
   * per artifact whether the host has it. For `plan` and `doctor`, before any switch joins.
   */
  async inspect(artifacts: readonly Artifact[]): Promise<StorageInspection> {
    const pool = this.pool;
    let poolState: StorageInspection["poolState"];
    let poolDetail: string;
    try {
      const info = (await this.virsh(["pool-info", pool])).stdout;
      poolState = /^State:\s+running/m.test(info)
        ? "running"
        : /^State:\s+inactive/m.test(info)
          ? "inactive"
          : "other";
      poolDetail = `pool ${pool} ${/^State:\s+(.+)$/m.exec(info)?.[1]?.trim() ?? "?"}`;
    } catch (e) {
      if (!isPoolMissing(e)) throw e;
      poolState = "missing";
      poolDetail = `pool ${pool} not defined yet (rfboot defines it with target ${this.spec.storageDir})`;
    }
    const problems: string[] = [];
    const findings: ArtifactFinding[] = [];
    if (poolState !== "missing") {
      const have = poolTarget((await this.virsh(["pool-dumpxml", pool])).stdout);
      if (have !== undefined && norm(have) !== norm(this.spec.storageDir)) {
        problems.push(
          `storage pool ${pool} on ${this.where()} has target ${have}, not storageDir ${this.spec.storageDir}`,
        );
      }
    }
    if (poolState === "running") await this.virsh(["pool-refresh", pool]);
    for (const a of artifacts) {
      if (this.spec.images === "path") {
        findings.push({ ...a, status: "at-path", hostPath: a.path });
        continue;
      }
      const volume = posix.basename(a.path);
      const hostPath = poolState === "running" ? await this.volumePath(pool, volume) : undefined;
      if (hostPath !== undefined) {
        findings.push({ ...a, volume, status: "found", hostPath });
      } else if (this.spec.upload && (await stat(a.path).catch(() => undefined))?.isFile()) {
        findings.push({ ...a, volume, status: "will-upload" });
      } else {
        findings.push({ ...a, volume, status: "missing" });
        problems.push(
          this.spec.upload
            ? `${a.role} ${a.path}: ${this.where()} has no volume ${volume} in pool ${pool}, and the local file to upload is missing`
            : this.missing(a, volume).message,
        );
      }
    }
    return { host: this.host.name, pool, poolState, poolDetail, artifacts: findings, problems };
  }

  /** dispose removes the private directory of transient volume XML. */
  dispose(): Promise<void> {
    return this.xmlFiles.dispose();
  }
}
