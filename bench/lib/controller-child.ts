/**
 * bench/lib/controller-child.ts: runs one rfboot Controller in its own process for bench/controller.ts,
 * so that its RSS and CPU are measured apart from the scripted switches and upstream.
 * IPC: {cmd:"start", options} -> {type:"started", port}; every `up` -> counted; {cmd:"stats"} ->
 * {type:"stats", ups, rss, heapUsed, connections, nofile, cpuUs, cpuSystemUs} (nofile: its open-files limits,
 * raised at start as `rfboot run` raises them; cpuUs: user + system; cpuSystemUs: the kernel's part);
 * {cmd:"close"} -> exits.
 */
import { processStats } from "./child-stats.js";
import { raiseNofile, readNofileLimits } from "../../src/common/nofile.js";
import { createController, type Controller, type ControllerOptions } from "../../src/controller/index.js";
import { readPortStats } from "../../src/controller/readport.js";

let controller: Controller | undefined;
let ups = 0;

process.on("message", (m: { cmd: string; options?: ControllerOptions }) => {
  void (async () => {
    switch (m.cmd) {
      case "start": {
        // As `rfboot run` does: one descriptor per switch (two relaying), so the soft limit goes to the hard one.
        await raiseNofile();
        controller = createController(m.options!);
        controller.on("up", () => {
          ups++;
        });
        const addr = await controller.start();
        process.send!({ type: "started", port: addr.port });
        break;
      }
      case "stats":
        process.send!({
          type: "stats",
          ups,
          connections: controller?.connectionCount ?? 0,
          readPorts: readPortStats(),
          nofile: readNofileLimits(),
          ...(controller?.replyPoll ? { replyPoll: { ...controller.replyPoll.stats } } : {}),
          ...processStats(),
        });
        break;
      case "gc":
        (globalThis as { gc?: () => void }).gc?.();
        process.send!({ type: "gc" });
        break;
      case "close":
        await controller?.close();
        process.exit(0);
    }
  })();
});
process.send!({ type: "ready" });
