/**
 * bench/lib/upstream-child.ts: runs the scripted upstream controller (bench/lib/upstream.ts) in its own
 * process for bench/controller.ts, as rfproxy runs apart from Open vSwitch and from rfboot, so that a
 * message to it and its answer cross a process boundary (a wake-up of another process) each way.
 * IPC: {type:"ready"} once loaded; {cmd:"start"} -> {type:"started", port} (listening on 127.0.0.1, a
 * free port); {cmd:"stats"} -> {type:"stats", rss, heapUsed, cpuUs, cpuSystemUs} (as controller-child.ts); {cmd:"close"} -> exits.
 */
import { processStats } from "./child-stats.js";
import { Upstream } from "./upstream.js";

let upstream: Upstream | undefined;

process.on("message", (m: { cmd: string }) => {
  void (async () => {
    switch (m.cmd) {
      case "start":
        upstream = new Upstream();
        await upstream.listen("127.0.0.1", 0);
        process.send!({ type: "started", port: upstream.port });
        break;
      case "stats":
        process.send!({ type: "stats", ...processStats() });
        break;
      case "close":
        // Connections are the bench's to end; do not wait for them.
        process.exit(0);
    }
  })();
});
process.send!({ type: "ready" });
