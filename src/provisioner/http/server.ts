/**
 * The daemon's HTTP listener (`rfboot run --http HOST:PORT`), read-only: the live page `/`, its pushed
 * updates `/events` (server-sent events), the JSON snapshot `/api/state`, Prometheus `/metrics`, `/healthz`
 * (the process answers) and `/readyz` (503 with the reasons when rfboot cannot do its job). With a token set,
 * every path but `/healthz` needs it, as `Authorization: Bearer TOKEN` or `?token=TOKEN` (a browser's
 * EventSource cannot send headers).
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import { UsageError, errorMessage } from "../../common/errors.js";
import { silentLogger, type Logger } from "../../common/log.js";
import type { Metrics } from "../metrics.js";
import { page, sections } from "./render.js";
import {
  buildSnapshot,
  readiness,
  type LiveSnapshot,
  type ReadyLimits,
  type ReadyReport,
  type SnapshotInput,
} from "./snapshot.js";

/** isLoopback says whether a listen address only accepts local connections. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h.startsWith("::ffff:127.");
}

/**
 * checkBind refuses to serve a non-loopback address without a token, unless `insecure` says the operator
 * wants that (a management network guarded otherwise): the page shows the whole deployment.
 */
export function checkBind(host: string, token: string | undefined, insecure: boolean): void {
  if (isLoopback(host) || token || insecure) return;
  throw new UsageError(
    `--http ${host}: refusing to serve a non-loopback address without a token; ` +
      "give --http-token-file FILE (or RFBOOT_HTTP_TOKEN), or --http-insecure to serve it unauthenticated",
  );
}

/** authorized says whether a request carries the token (header or query); constant-time comparison. */
export function authorized(
  req: { headers: IncomingMessage["headers"]; url?: string },
  token: string,
): boolean {
  const header = req.headers.authorization;
  const fromHeader =
    typeof header === "string" && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, "") : undefined;
  const fromQuery = new URL(req.url ?? "/", "http://x").searchParams.get("token") ?? undefined;
  const given = Buffer.from(fromHeader ?? fromQuery ?? "");
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** changeKey is a snapshot without what changes on its own (its time, the outbox's age), for pushing on change. */
function changeKey(s: LiveSnapshot): string {
  const { at: _at, store, ...rest } = s;
  const { oldestPendingAgeSeconds: _age, ...st } = store;
  return JSON.stringify({ ...rest, store: st });
}

/** LiveStateOptions configure a LiveState. */
export interface LiveStateOptions {
  gather: () => Promise<SnapshotInput>;
  now?: () => Date;
  limits?: ReadyLimits;
  log?: Logger;
}

/**
 * LiveState keeps the latest snapshot: `refresh()` gathers and rebuilds it (concurrent calls share one round)
 * and tells the listeners when it changed.
 */
export class LiveState {
  private current: LiveSnapshot | undefined;
  private key = "";
  private round: Promise<LiveSnapshot> | undefined;
  private readonly listeners = new Set<(s: LiveSnapshot) => void>();
  private readonly now: () => Date;

  constructor(private readonly opts: LiveStateOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  /** latest is the last snapshot built, if any. */
  latest(): LiveSnapshot | undefined {
    return this.current;
  }

  /** ready is the readiness of a snapshot under this state's limits. */
  ready(s: LiveSnapshot): ReadyReport {
    return readiness(s, this.opts.limits);
  }

  /** refresh builds a new snapshot. */
  refresh(): Promise<LiveSnapshot> {
    this.round ??= (async () => {
      try {
        const s = buildSnapshot(await this.opts.gather(), this.now());
        this.current = s;
        const k = changeKey(s);
        if (k !== this.key) {
          this.key = k;
          for (const l of this.listeners) l(s);
        }
        return s;
      } finally {
        this.round = undefined;
      }
    })();
    return this.round;
  }

  /** onChange registers a listener of changed snapshots; returns an unsubscribe. */
  onChange(fn: (s: LiveSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** LiveServerOptions configure the listener. */
export interface LiveServerOptions {
  host: string;
  port: number;
  state: LiveState;
  metrics: Metrics;
  /** token, when set, is needed for every path but /healthz. */
  token?: string;
  /** pollMs: how often the state is refreshed besides the daemon's events (default 2000). */
  pollMs?: number;
  /** keepAliveMs: an SSE comment line this often keeps proxies from closing idle streams (default 15000). */
  keepAliveMs?: number;
  log?: Logger;
}

/** LiveServer serves the page, its updates, the snapshot, metrics and health on one listener. */
export class LiveServer {
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly streams = new Set<ServerResponse>();
  private unsubscribe: (() => void) | undefined;
  private pokeTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: LiveServerOptions) {
    this.log = opts.log ?? silentLogger;
  }

  /** start listens and begins refreshing; resolves the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`internal error: ${errorMessage(err)}\n`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
    this.opts.metrics.observe(() => this.opts.state.latest());
    this.unsubscribe = this.opts.state.onChange((s) => this.push(s));
    const tick = () => void this.opts.state.refresh().catch((e: unknown) => this.refreshFailed(e));
    tick();
    this.timer = setInterval(tick, this.opts.pollMs ?? 2000);
    this.timer.unref();
    this.keepAlive = setInterval(() => {
      for (const r of this.streams) r.write(": keep-alive\n\n");
    }, this.opts.keepAliveMs ?? 15_000);
    this.keepAlive.unref();
    const addr = server.address();
    return { host: this.opts.host, port: typeof addr === "object" && addr ? addr.port : this.opts.port };
  }

  /** poke refreshes soon (a daemon event); a burst of events costs one refresh. */
  poke(): void {
    if (this.pokeTimer) return;
    this.pokeTimer = setTimeout(() => {
      this.pokeTimer = undefined;
      void this.opts.state.refresh().catch((e: unknown) => this.refreshFailed(e));
    }, 100);
    this.pokeTimer.unref();
  }

  /** close ends the streams and stops listening. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.keepAlive);
    clearTimeout(this.pokeTimer);
    this.unsubscribe?.();
    for (const r of this.streams) r.end();
    this.streams.clear();
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  private refreshFailed(e: unknown): void {
    this.log.warn({ err: errorMessage(e) }, "live page: state refresh failed");
  }

  private push(s: LiveSnapshot): void {
    if (this.streams.size === 0) return;
    const data = `data: ${JSON.stringify({ at: s.at, html: sections(s, this.opts.state.ready(s)) })}\n\n`;
    for (const r of this.streams) r.write(data);
  }

  private async snapshot(): Promise<LiveSnapshot> {
    return this.opts.state.latest() ?? (await this.opts.state.refresh());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("read-only: GET only\n");
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (this.opts.token && !authorized(req, this.opts.token)) {
      res
        .writeHead(401, { "www-authenticate": 'Bearer realm="rfboot"', "content-type": "text/plain" })
        .end("unauthorized: send Authorization: Bearer TOKEN or ?token=TOKEN\n");
      return;
    }
    const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
    switch (path) {
      case "/": {
        const s = await this.snapshot();
        res
          .writeHead(200, {
            ...headers,
            "content-type": "text/html; charset=utf-8",
            // Everything is inline and nothing is fetched from elsewhere; the script only talks back to us.
            "content-security-policy":
              "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
          })
          .end(page(s, this.opts.state.ready(s)));
        return;
      }
      case "/api/state": {
        const s = await this.snapshot();
        res
          .writeHead(200, { ...headers, "content-type": "application/json" })
          .end(JSON.stringify({ ...s, readiness: this.opts.state.ready(s) }, null, 2) + "\n");
        return;
      }
      case "/events": {
        res.writeHead(200, { ...headers, "content-type": "text/event-stream", connection: "keep-alive" });
        if (req.method === "HEAD") {
          res.end();
          return;
        }
        res.write("retry: 2000\n\n");
        this.streams.add(res);
        req.on("close", () => this.streams.delete(res));
        const s = await this.snapshot();
        res.write(`data: ${JSON.stringify({ at: s.at, html: sections(s, this.opts.state.ready(s)) })}\n\n`);
        return;
      }
      case "/readyz": {
        // Fresh, not the last poll's: a load balancer acting on it must see the state as it is now.
        const s = await this.opts.state.refresh();
        const r = this.opts.state.ready(s);
        res
          .writeHead(r.ready ? 200 : 503, { ...headers, "content-type": "application/json" })
          .end(JSON.stringify(r) + "\n");
        return;
      }
      case "/metrics": {
        // The state gauges read the latest snapshot: refresh it when it is older than a poll.
        const last = this.opts.state.latest();
        if (!last || Date.now() - Date.parse(last.at) > (this.opts.pollMs ?? 2000))
          await this.opts.state.refresh().catch((e: unknown) => this.refreshFailed(e));
        const text = await this.opts.metrics.registry.metrics();
        res.writeHead(200, { ...headers, "content-type": this.opts.metrics.registry.contentType }).end(text);
        return;
      }
      default:
        res
          .writeHead(404, { "content-type": "text/plain" })
          .end("not found: try /, /events, /api/state, /metrics, /healthz, /readyz\n");
    }
  }
}
