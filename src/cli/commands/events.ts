/**
 * `rfboot events`: rfboot's event log (`<prefix>_events` in MongoDB: joins, boots, readiness, errors, leaves,
 * port changes), oldest first; `--follow` keeps printing new entries as they are written.
 */
import type { Command } from "commander";
import { dpidToHex } from "../../common/dpid.js";
import { RfbootError, UsageError, errorMessage } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { MongoStore, loadConfig, parseDpidArg, type StoredEvent } from "../../provisioner/index.js";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** parseSince reads `--since`: an age (`90s`, `10m`, `2h`, `1d`) before `now`, or an ISO 8601 time. */
export function parseSince(text: string, now: Date): Date {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  if (m) return new Date(now.getTime() - Number(m[1]) * UNITS[m[2]!]!);
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(t))
    throw new UsageError(
      `--since: expected an age (30s, 10m, 2h, 1d) or an ISO time (2026-01-31T12:00:00Z), got ${JSON.stringify(text)}`,
    );
  return new Date(t);
}

/** formatEvent renders one event as a line: time, dpid, VM, kind, detail. */
export function formatEvent(e: StoredEvent): string {
  const at = new Date(e.at).toISOString();
  return [at, e.dpid ?? "-", e.vm ?? "-", e.kind, e.detail ?? ""].join("  ").trimEnd();
}

/**
 * Follower remembers what was printed: the latest time seen and the ids at that time, so that each poll
 * (`at >= latest`) prints only what is new. An event written later with an older time (buffered during an
 * outage by another instance) is not printed by a follow already past it.
 */
export class Follower {
  private latest: Date | undefined;
  private atLatest = new Set<string>();

  constructor(since?: Date) {
    this.latest = since;
  }

  /** since is the lower bound of the next poll. */
  since(): Date | undefined {
    return this.latest;
  }

  /** fresh returns the events not printed yet, in order, and remembers them. */
  fresh(events: readonly StoredEvent[]): StoredEvent[] {
    const out: StoredEvent[] = [];
    for (const e of events) {
      const at = new Date(e.at);
      if (this.latest && at < this.latest) continue;
      if (this.latest && at.getTime() === this.latest.getTime() && this.atLatest.has(e.id)) continue;
      if (!this.latest || at > this.latest) {
        this.latest = at;
        this.atLatest = new Set();
      }
      this.atLatest.add(e.id);
      out.push(e);
    }
    return out;
  }
}

interface EventsFlags {
  config: string;
  follow?: boolean;
  dpid?: string;
  since?: string;
  json?: boolean;
  limit: string;
  interval: string;
}

/** registerEvents adds `rfboot events --config FILE [--follow] [--dpid X] [--since T] [--json]`. */
export function registerEvents(program: Command): void {
  program
    .command("events")
    .description(
      "print rfboot's event log from MongoDB, oldest first (joins, boots, readiness, errors, leaves, ports);\n" +
        "--follow keeps printing new events until Ctrl-C",
    )
    .requiredOption("-c, --config <file>", "config file (YAML or JSON)")
    .option("-f, --follow", "keep printing new events as they are written")
    .option("--dpid <dpid>", "only this datapath's events (hex, 0x..., decimal or aa:bb:... form)")
    .option("--since <time>", "only events since an age (30s, 10m, 2h, 1d) or an ISO time")
    .option("--json", "print one JSON object per line")
    .option("-n, --limit <n>", "at most this many past events (the newest)", "50")
    .option("--interval <seconds>", "--follow: seconds between reads", "1")
    .action(async (opts: EventsFlags) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit: expected a positive integer, got ${JSON.stringify(opts.limit)}`);
      const interval = Number(opts.interval);
      if (!Number.isFinite(interval) || interval <= 0)
        throw new UsageError(
          `--interval: expected a positive number of seconds, got ${JSON.stringify(opts.interval)}`,
        );
      const since = opts.since !== undefined ? parseSince(opts.since, new Date()) : undefined;
      const dpid = opts.dpid !== undefined ? dpidToHex(parseDpidArg(opts.dpid)) : undefined;
      const config = await loadConfig(opts.config);
      const store = await MongoStore.open({
        uri: config.mongo.uri,
        database: config.mongo.database,
        prefix: `${config.mongo.collectionPrefix}_`,
        logger: silentLogger,
        serverSelectionTimeoutMS: 3000,
      });
      const print = (e: StoredEvent) =>
        process.stdout.write((opts.json ? JSON.stringify(e) : formatEvent(e)) + "\n");
      const follower = new Follower(since);
      const read = () =>
        store.eventsSince({
          ...(follower.since() ? { since: follower.since() } : {}),
          ...(dpid ? { dpid } : {}),
          limit,
        });
      try {
        let first: StoredEvent[];
        try {
          first = await read();
        } catch (e) {
          throw new RfbootError(
            `cannot read the event log from MongoDB at ${config.mongo.database}: ${errorMessage(e)}`,
          );
        }
        for (const e of follower.fresh(first)) print(e);
        if (!opts.follow) return;
        let stop = false;
        let wake: (() => void) | undefined;
        const onSignal = () => {
          stop = true;
          wake?.();
        };
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        let warned = false;
        try {
          while (!stop) {
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, interval * 1000);
              wake = () => {
                clearTimeout(t);
                resolve();
              };
            });
            if (stop) break;
            try {
              for (const e of follower.fresh(await read())) print(e);
              warned = false;
            } catch (e) {
              if (!warned)
                process.stderr.write(`rfboot: event log unreadable, still trying: ${errorMessage(e)}\n`);
              warned = true;
            }
          }
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      } finally {
        await store.close(500).catch(() => undefined);
      }
    });
}
