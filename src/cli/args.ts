/** Argument parsers shared by the CLI commands. */
import { UsageError } from "../common/errors.js";

/** HostPort is a parsed HOST:PORT argument. */
export interface HostPort {
  host: string;
  port: number;
}

/** parseHostPort reads "HOST:PORT" or "[IPv6]:PORT"; `what` names the option in the error. */
export function parseHostPort(text: string, what: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(
      `${what}: expected HOST:PORT (e.g. 127.0.0.1:6653, [::1]:6653), got ${JSON.stringify(text)}`,
    );
  }
  return { host: m[1]!, port };
}
