/** Store error helpers: wrap driver errors into StoreError and tell an outage from a refused operation. */
import {
  MongoBulkWriteError,
  type Collection,
  type Document,
  type OptionalUnlessRequiredId,
  MongoClientClosedError,
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from "mongodb";
import { errorMessage, RfbootError, StoreError } from "../../common/errors.js";

/** DUPLICATE_KEY is MongoDB's (and FerretDB's) duplicate key error code (E11000). */
export const DUPLICATE_KEY = 11000;

/** isDuplicateKey reports a unique-index violation. */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoError && err.code === DUPLICATE_KEY;
}

/** writeErrorsOf lists the per-document errors of an unordered batch's failure (none for anything else). */
function writeErrorsOf(err: MongoBulkWriteError): { index: number; code: number }[] {
  const raw: unknown = err.writeErrors;
  return (Array.isArray(raw) ? raw : raw ? [raw] : []) as { index: number; code: number }[];
}

/**
 * duplicateIndexes returns the positions of the writes of an unordered batch (insertMany, bulkWrite) that
 * failed only for a duplicate key, when that is the batch's only kind of failure; undefined otherwise (the
 * caller rethrows). The other writes of the batch were applied.
 */
export function duplicateIndexes(err: unknown): Set<number> | undefined {
  if (!(err instanceof MongoBulkWriteError)) return undefined;
  const list = writeErrorsOf(err);
  if (list.length === 0 || list.some((w) => w.code !== DUPLICATE_KEY)) return undefined;
  return new Set(list.map((w) => w.index));
}

/**
 * insertUnordered inserts `docs` in one unordered insertMany and returns the positions refused for a
 * duplicate key (the others are in); any other failure is thrown.
 */
export async function insertUnordered<T extends Document>(
  col: Collection<T>,
  docs: readonly OptionalUnlessRequiredId<T>[],
): Promise<Set<number>> {
  if (docs.length === 0) return new Set();
  try {
    await col.insertMany([...docs], { ordered: false });
    return new Set();
  } catch (err) {
    const dup = duplicateIndexes(err);
    if (!dup) throw err;
    return dup;
  }
}

// Server codes that mean "try again later" (MongoDB's retryable set: not primary, shutting down, ...).
const TRANSIENT_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/**
 * isTransient reports an error caused by the server being unreachable or restarting: the outbox keeps such
 * writes and retries them. Anything else (a refused or malformed operation) is permanent.
 */
export function isTransient(err: unknown): boolean {
  // Follow the cause chain: the driver sometimes surfaces the raw socket error (found: a write on a socket
  // FerretDB closed when killed rejects with a plain `Error` whose code is EPIPE).
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (transientOne(e)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

// Socket-level failures: the server went away or is not there yet.
const SOCKET_CODES = new Set([
  "EPIPE",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTCONN",
  "EAI_AGAIN",
]);

function transientOne(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && SOCKET_CODES.has(code)) return true;
  if (
    e instanceof MongoNetworkError ||
    e instanceof MongoServerSelectionError ||
    e instanceof MongoTopologyClosedError ||
    e instanceof MongoNotConnectedError ||
    e instanceof MongoClientClosedError
  ) {
    return true;
  }
  if (e instanceof MongoBulkWriteError) {
    // Found under issue 6's outage test once writes were batched: insertMany/bulkWrite (driver 7.9) wrap a
    // network failure in a MongoBulkWriteError with no write errors, no cause and no code, only the
    // driver's labels and the socket error's message. A batch that refused documents has write errors.
    const refused = writeErrorsOf(e).length > 0;
    if (!refused && (e.hasErrorLabel("RetryableError") || e.hasErrorLabel("SystemOverloadedError")))
      return true;
    if (!refused && [...SOCKET_CODES].some((c) => e.message.includes(c))) return true;
  }
  if (e instanceof MongoError) {
    if (typeof e.code === "number" && TRANSIENT_CODES.has(e.code)) return true;
    if (e.hasErrorLabel("RetryableWriteError") || e.hasErrorLabel("ResetPool")) return true;
    // Driver-side pool/connection errors have no code; PoolClearedError names itself.
    if (e.name === "PoolClearedError" || e.name === "MongoPoolClearedError") return true;
  }
  return false;
}

/**
 * isOutage reports a failure that means MongoDB could not be reached: a StoreError carrying the outage label
 * (set by `wrap` and the store's stall guards), or a raw driver or socket error that `isTransient` classifies
 * so. A refused operation, a bad input or a closed store is not an outage.
 */
export function isOutage(err: unknown): boolean {
  if (err instanceof StoreError) return err.outage;
  return isTransient(err);
}

/** isUnavailable is the older name of isOutage. */
export const isUnavailable = isOutage;

/** wrap turns any failure of `operation` into a StoreError that names it and keeps the cause. */
export function wrap(operation: string, err: unknown, what = ""): StoreError {
  if (err instanceof StoreError) return err;
  const reason = isTransient(err)
    ? `MongoDB is unreachable (${errorMessage(err)}); check that the server runs and the URI is right`
    : errorMessage(err);
  return new StoreError(`${operation}${what ? ` (${what})` : ""} failed: ${reason}`, operation, {
    cause: err,
    outage: isTransient(err),
  });
}

/**
 * attempt runs `fn` and rethrows any failure as a StoreError naming `operation`; rfboot's own errors
 * (a ConfigError for bad input) pass through unchanged.
 */
export async function attempt<T>(operation: string, fn: () => Promise<T>, what = ""): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RfbootError) throw err;
    throw wrap(operation, err, what);
  }
}

/** isTopologyClosed reports the driver's "Topology is closed" (directly or as a StoreError's cause). */
export function isTopologyClosed(err: unknown): boolean {
  const e = err instanceof StoreError ? err.cause : err;
  return e instanceof MongoTopologyClosedError;
}
