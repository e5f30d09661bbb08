/** Logging: pino to stderr (JSON), pretty when stderr is a terminal; secrets redacted. */
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

/** redactUri hides the password in a URI such as `mongodb://user:secret@host/db` or `qemu+tcp://u:p@h/system`. */
export function redactUri(uri: string): string {
  return uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@:]*):([^/@]*)@/i, "$1$2:***@");
}

/** Credentials in any URI inside a text (user:password@), stopping at JSON string and whitespace boundaries. */
const URI_CREDENTIALS_RE = /\b([a-z][a-z0-9+.-]*:\/\/)([^/@:\s"'\\]*):([^/@\s"'\\]+)@/gi;
/** Password-like query parameters (`?password=...`, `&authMechanismProperties=...:secret`). */
const QUERY_SECRET_RE = /([?&;](?:password|passwd|pwd|secret|token|authMechanismProperties)=)([^&\s"'\\]+)/gi;

/**
 * redactSecrets hides every URI password and password-like query parameter anywhere in a text: log
 * messages, error messages and stacks, argument arrays. createLogger applies it to every serialized
 * line, so a secret is redacted whatever field or message carries it.
 */
export function redactSecrets(text: string): string {
  return text.replace(URI_CREDENTIALS_RE, "$1$2:***@").replace(QUERY_SECRET_RE, "$1***");
}

/** LoggerOptions configure createLogger. */
export interface LoggerOptions {
  level?: string;
  pretty?: boolean;
  name?: string;
  /** Where JSON lines go (default: stderr, synchronously); tests pass a stream to capture them. */
  destination?: DestinationStream;
}

/** createLogger builds the process logger; level from `RFBOOT_LOG_LEVEL` (default info). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.RFBOOT_LOG_LEVEL ?? "info";
  const pretty =
    options.pretty ??
    (options.destination === undefined && process.stderr.isTTY && process.env.RFBOOT_LOG_JSON !== "1");
  const base = {
    level,
    name: options.name ?? "rfboot",
    redact: {
      paths: ["password", "*.password", "uri", "*.uri", "mongoUri", "*.mongoUri"],
      censor: (value: unknown) =>
        typeof value === "string" ? redactSecrets(redactUri(value)) : "[redacted]",
    },
    // The last line of defence: whatever path a URI with a password took into the line, it leaves redacted.
    hooks: { streamWrite: redactSecrets },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: "pino-pretty", options: { destination: 2, colorize: true } },
    });
  }
  return pino(base, options.destination ?? pino.destination({ dest: 2, sync: true }));
}

/** silentLogger is a logger that writes nothing (tests, library use). */
export const silentLogger: Logger = pino({ level: "silent" });
