/** What `rfboot doctor` reports, and the seams through which it looks at the machine. */

/** CheckStatus: ok, a warning worth reading, or a failure. */
export type CheckStatus = "ok" | "warn" | "fail";

/**
 * Check is one finding: what was checked (`id`) on what (`target`: a host, a bridge, a URI), what was found
 * (`detail`) and how to fix it (`fix`, empty when there is nothing to do). A `blocking` check makes doctor
 * exit 1: rfboot cannot work until it is fixed.
 */
export interface Check {
  id: string;
  target: string;
  status: CheckStatus;
  blocking: boolean;
  detail: string;
  fix: string;
  /** ms the check took, when it talked to something. */
  ms?: number;
}

/** CommandResult is how a child process ended; a spawn failure has no exit code and an `error` text. */
export interface CommandResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  error?: string;
}

/** CommandRunner runs `cmd args` (never through a shell) and always resolves; `timeoutMs` kills it. */
export type CommandRunner = (
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs: number },
) => Promise<CommandResult>;

/** FileKind is the file type doctor cares about. */
export type FileKind = "file" | "dir" | "char" | "other";

/** FileStat is the part of stat(2) doctor reads. */
export interface FileStat {
  kind: FileKind;
  uid: number;
  gid: number;
  /** mode: permission bits only (0o7777). */
  mode: number;
  mtimeMs: number;
  ino: number;
}

/** HostFs reads files, /proc included; every method resolves undefined when the path cannot be read. */
export interface HostFs {
  readFile(path: string): Promise<string | undefined>;
  readdir(path: string): Promise<string[] | undefined>;
  stat(path: string): Promise<FileStat | undefined>;
  readlink(path: string): Promise<string | undefined>;
}

/** MongoHello is what the server said about itself. */
export interface MongoHello {
  /** version as `buildInfo` reports it (FerretDB reports the MongoDB version it is compatible with). */
  version: string;
  /** ferretdb is FerretDB's own version, when the server is FerretDB. */
  ferretdb?: string;
  /** localTime is the server's wall clock from `hello`. */
  localTime?: Date;
  /** sentAt / receivedAt: the local wall clock (ms) just before and after the `hello` that read localTime. */
  sentAt?: number;
  receivedAt?: number;
}

/** MongoProbe asks a server for `hello` and `buildInfo`; it rejects when the server cannot be reached. */
export type MongoProbe = (uri: string, timeoutMs: number) => Promise<MongoHello>;

/** Clock: wall time (for skew), a monotonic timer (for latency) and sleep. */
export interface Clock {
  now(): number;
  mono(): number;
  sleep(ms: number): Promise<void>;
}

/** DoctorSeams are everything doctor touches; tests pass fakes. */
export interface DoctorSeams {
  run: CommandRunner;
  fs: HostFs;
  mongo: MongoProbe;
  clock: Clock;
}
