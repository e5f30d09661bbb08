/**
 * One error tree for rfboot: every failure is an RfbootError subclass, never a string, so a caller can tell
 * kinds apart with `instanceof` and a predicate instead of parsing messages.
 */

/** RfbootError is the base of every error rfboot throws on purpose. */
export class RfbootError extends Error {
  override name = "RfbootError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** OpenFlowErrorCode names what was wrong with a frame or a session. */
export type OpenFlowErrorCode =
  "bad-length" | "truncated" | "bad-version" | "bad-field" | "trailing-bytes" | "handshake" | "timeout";

/** OpenFlowError: malformed OpenFlow input; `offset` is the byte at which decoding failed. */
export class OpenFlowError extends RfbootError {
  override name = "OpenFlowError";
  constructor(
    message: string,
    readonly code: OpenFlowErrorCode,
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** ConfigProblem is one thing wrong with a config: the key path, the sentence after it, and the bad value. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  readonly value?: unknown;
}

/**
 * ConfigError: an invalid configuration value; `path` is the key path (e.g. `vms.rfvmA.memory`). A config with
 * several problems throws one ConfigError listing them all in `problems` (a file's in line order); `path`,
 * `value` and `message` are the first one's, so a caller that shows one line still shows the first problem.
 */
export class ConfigError extends RfbootError {
  override name = "ConfigError";
  readonly problems: readonly ConfigProblem[];
  constructor(
    message: string,
    readonly path: string,
    readonly value?: unknown,
    options?: { cause?: unknown; problems?: readonly ConfigProblem[] },
  ) {
    const more = (options?.problems?.length ?? 1) - 1;
    super(
      (path ? `${path}: ${message}` : message) +
        (more > 0 ? ` [and ${more} more problem${more > 1 ? "s" : ""}]` : ""),
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.problems = options?.problems?.length
      ? options.problems
      : [{ path, message, ...(value !== undefined ? { value } : {}) }];
  }
}

/** describeConfigError renders every problem of a ConfigError, one per line (`path: message`). */
export function describeConfigError(err: ConfigError): string {
  if (err.problems.length === 1) return err.message;
  const lines = err.problems.map((p) => `  ${p.path ? `${p.path}: ` : ""}${p.message}`);
  return [`${err.problems.length} problems:`, ...lines].join("\n");
}

/** VirshErrorKind classifies a failed virsh call, so callers branch on the kind, not on stderr text. */
export type VirshErrorKind =
  | "domain-missing"
  | "already-exists"
  | "already-running"
  | "not-running"
  | "unreachable"
  | "timeout"
  /** The driver cannot attach or detach this device (at all, or on a running domain). */
  | "hotplug-unsupported"
  /** The domain has no device matching the one given (detach of a NIC that is not there). */
  | "device-missing"
  /** The named storage pool is not defined on that host. */
  | "pool-missing"
  /** The storage pool is defined but not started (e.g. after a libvirtd restart without autostart). */
  | "pool-inactive"
  /** The pool has no volume of that name (or path). */
  | "volume-missing"
  /** A volume of that name, or a file at its path, is already there. */
  | "volume-exists"
  /** The connection's driver lacks the API the call needs (the test driver's vol-upload, for one). */
  | "unsupported"
  | "other";

/** VirshError: a virsh call that failed, with its arguments and raw stderr kept. */
export class VirshError extends RfbootError {
  override name = "VirshError";
  constructor(
    message: string,
    readonly kind: VirshErrorKind,
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * OvsErrorKind classifies a failed ovs-vsctl call: `unreachable` (ovs-vswitchd or its database is down, or
 * ovs-vsctl is not installed), `timeout`, `bridge-missing` (a named bridge does not exist), `port-exists` (a
 * port of that name is on another bridge), `other`.
 */
export type OvsErrorKind = "unreachable" | "timeout" | "bridge-missing" | "port-exists" | "other";

/** OvsError: an Open vSwitch call (ovs-vsctl) that failed, with its arguments and raw stderr kept. */
export class OvsError extends RfbootError {
  override name = "OvsError";
  constructor(
    message: string,
    readonly kind: OvsErrorKind,
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** ConsoleErrorKind says why watching a domain's console ended without the marker. */
export type ConsoleErrorKind = "timeout" | "aborted" | "exited" | "spawn";

/**
 * ConsoleError: watching a domain's console for a marker failed; `domain` and `uri` name what was watched.
 * For `exited`, `cause` is the classified VirshError when virsh printed one (e.g. the domain is missing).
 */
export class ConsoleError extends RfbootError {
  override name = "ConsoleError";
  constructor(
    message: string,
    readonly kind: ConsoleErrorKind,
    readonly domain: string,
    readonly uri: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * StoreError: a MongoDB operation that failed; `operation` names what was attempted. `outage` is the label
 * set where the store classifies the failure: true when MongoDB could not be reached (down, restarting,
 * network), so the operation may succeed later unchanged; false when MongoDB (or rfboot's own checks)
 * refused it. Callers ask `isOutage(err)` instead of reading the message.
 */
export class StoreError extends RfbootError {
  override name = "StoreError";
  readonly outage: boolean;
  constructor(
    message: string,
    readonly operation: string,
    options?: { cause?: unknown; outage?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.outage = options?.outage ?? false;
  }
}

/** StorageErrorKind says what was wrong with a host's storage. */
export type StorageErrorKind =
  /** A base image, kernel or initrd is not in the host's pool (and rfboot may not upload it). */
  | "missing"
  /** An upload could not be made or did not arrive intact (the volume was deleted again). */
  | "upload"
  /** The pool exists with another target than the config's directory, or a disk lies outside the pool. */
  | "mismatch";

/**
 * StorageError: a host's storage pool or a volume in it is not what rfboot needs; `host`, `pool` and
 * `volume` name what was looked at, and the message says how to fix it.
 */
export class StorageError extends RfbootError {
  override name = "StorageError";
  constructor(
    message: string,
    readonly kind: StorageErrorKind,
    readonly host: string,
    readonly pool: string,
    readonly volume?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** UsageError: bad command-line usage; the CLI exits 2. */
export class UsageError extends RfbootError {
  override name = "UsageError";
}

/** errorMessage returns a one-line description of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
