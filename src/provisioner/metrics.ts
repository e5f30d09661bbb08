/** Prometheus metrics for the daemon (prom-client), served on `--metrics HOST:PORT` at /metrics. */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Metrics is the daemon's set of counters and histograms, on a registry of its own (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly joins = new Counter({
    name: "rfboot_joins_total",
    help: "Datapath joins (switch handshakes completed)",
    registers: [this.registry],
  });
  readonly leaves = new Counter({
    name: "rfboot_leaves_total",
    help: "Datapath leaves (main connection gone)",
    registers: [this.registry],
  });
  readonly boots = new Counter({
    name: "rfboot_boots_total",
    help: "VM starts by outcome: started (cold), resumed (managedsave), adopted (already running)",
    labelNames: ["action", "host"],
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: "rfboot_failures_total",
    help: "Failed provisioning steps by kind",
    labelNames: ["step", "kind"],
    registers: [this.registry],
  });
  readonly reactionSeconds = new Histogram({
    name: "rfboot_reaction_seconds",
    help: "Time from the switch's FEATURES_REPLY (join) to `virsh start` issued",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly bootSeconds = new Histogram({
    name: "rfboot_boot_latency_seconds",
    help: "Time from join to the domain running",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly readySeconds = new Histogram({
    name: "rfboot_ready_latency_seconds",
    help: "Time from join to the VM ready (console marker or rfclient PortRegister)",
    buckets: [0.1, 0.5, 1, 2, 3, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly datapathsUp = new Gauge({
    name: "rfboot_datapaths_up",
    help: "Datapaths currently connected",
    registers: [this.registry],
  });
  readonly storePending = new Gauge({
    name: "rfboot_store_pending_writes",
    help: "MongoDB writes buffered while the database is unreachable",
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: "rfboot_" });
  }

  /** serve starts the HTTP endpoint; resolves with the bound address. */
  async serve(host: string, port: number): Promise<{ server: Server; host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end("not found: try /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    const bound = typeof addr === "object" && addr ? addr.port : port;
    return { server, host, port: bound };
  }
}
