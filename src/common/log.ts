/** Logging: pino to stderr (JSON), pretty when stderr is a terminal; secrets redacted. */
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** redactUri hides the password in a URI such as `mongodb://user:secret@host/db` or `qemu+tcp://u:p@h/system`. */
export function redactUri(uri: string): string {
  return uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@:]*):([^/@]*)@/i, "$1$2:***@");
}

/** createLogger builds the process logger; level from `RFBOOT_LOG_LEVEL` (default info). */
export function createLogger(options: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = options.level ?? process.env.RFBOOT_LOG_LEVEL ?? "info";
  const pretty = options.pretty ?? (process.stderr.isTTY && process.env.RFBOOT_LOG_JSON !== "1");
  const base = {
    level,
    name: options.name ?? "rfboot",
    redact: {
      paths: ["password", "*.password", "uri", "*.uri", "mongoUri", "*.mongoUri"],
      censor: (value: unknown) => (typeof value === "string" ? redactUri(value) : "[redacted]"),
    },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: "pino-pretty", options: { destination: 2, colorize: true } },
    });
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** silentLogger is a logger that writes nothing (tests, library use). */
export const silentLogger: Logger = pino({ level: "silent" });
