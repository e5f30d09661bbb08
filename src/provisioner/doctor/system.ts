/** The real seams of `rfboot doctor`: execa for commands, node:fs for /proc and /etc, the mongodb driver. */
import { readFile, readdir, readlink, stat } from "node:fs/promises";
import { execa } from "execa";
import { MongoClient } from "mongodb";
import type { Clock, CommandRunner, DoctorSeams, FileKind, HostFs, MongoProbe } from "./types.js";

/**
 * systemRunner runs a command with execa (argument array, C locale) in its own process group and kills the
 * whole group at the timeout, so a helper that inherited the pipes cannot keep the call waiting.
 */
export const systemRunner: CommandRunner = async (cmd, args, opts) => {
  const sub = execa(cmd, [...args], {
    env: { LC_ALL: "C", LANG: "C", LANGUAGE: "" },
    extendEnv: true,
    reject: false,
    stdin: "ignore",
    detached: true,
  });
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      try {
        if (sub.pid !== undefined) process.kill(-sub.pid, "SIGKILL");
      } catch {
        sub.kill("SIGKILL");
      }
    },
    Math.max(1, opts.timeoutMs),
  );
  const r = await sub.finally(() => clearTimeout(timer));
  const stdout = typeof r.stdout === "string" ? r.stdout : "";
  const stderr = typeof r.stderr === "string" ? r.stderr : "";
  const spawnFailed = r.exitCode === undefined && !timedOut;
  return {
    exitCode: timedOut ? undefined : r.exitCode,
    stdout,
    stderr,
    timedOut,
    ...(spawnFailed ? { error: r.shortMessage ?? `${cmd} could not be run` } : {}),
  };
};

function kindOf(s: { isFile(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean }): FileKind {
  return s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isCharacterDevice() ? "char" : "other";
}

/** systemFs reads the real filesystem; any error (missing, permission, a process gone) reads as undefined. */
export const systemFs: HostFs = {
  readFile: (p) => readFile(p, "utf8").catch(() => undefined),
  readdir: (p) => readdir(p).catch(() => undefined),
  readlink: (p) => readlink(p).catch(() => undefined),
  stat: async (p) => {
    try {
      const s = await stat(p);
      return {
        kind: kindOf(s),
        uid: s.uid,
        gid: s.gid,
        mode: s.mode & 0o7777,
        mtimeMs: s.mtimeMs,
        ino: s.ino,
      };
    } catch {
      return undefined;
    }
  },
};

/** systemMongo connects with short timeouts, asks `hello` (timed, for the clock) and `buildInfo`. */
export const systemMongo: MongoProbe = async (uri, timeoutMs) => {
  const t = Math.max(100, timeoutMs);
  const client = new MongoClient(uri, {
    serverSelectionTimeoutMS: t,
    connectTimeoutMS: t,
    socketTimeoutMS: t,
    directConnection: !uri.startsWith("mongodb+srv:"),
  });
  try {
    await client.connect();
    const admin = client.db("admin");
    const sentAt = Date.now();
    const hello = await admin.command({ hello: 1 });
    const receivedAt = Date.now();
    const info = await admin.command({ buildInfo: 1 });
    // FerretDB answers buildInfo with the MongoDB version it is compatible with, and its own beside it.
    const ferret = (info as { ferretdbVersion?: unknown }).ferretdbVersion;
    const localTime = (hello as { localTime?: unknown }).localTime;
    return {
      version: String(info.version ?? "?"),
      ...(typeof ferret === "string" ? { ferretdb: ferret } : {}),
      ...(localTime instanceof Date ? { localTime, sentAt, receivedAt } : {}),
    };
  } finally {
    await client.close(true).catch(() => undefined);
  }
};

/** systemClock is the real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  mono: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** systemSeams are the seams doctor uses outside tests. */
export const systemSeams: DoctorSeams = {
  run: systemRunner,
  fs: systemFs,
  mongo: systemMongo,
  clock: systemClock,
};
