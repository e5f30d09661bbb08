/**
 * bench/lib/pipe-child.ts: the reference forwarder of bench/controller.ts's flood, in its own process as
 * the rfboot relay (bench/lib/controller-child.ts) is. Per accepted connection it connects to the given
 * upstream and forwards both ways with `stream.pipe`: no framing, no parsing, no OpenFlow knowledge, no
 * backpressure logic of its own (pipe's). It is the cheapest relay a Node process can be, so the rfboot
 * relay's throughput and CPU per GiB measured beside it say how much of the gap to a direct connection is
 * rfboot's own work and how much is the cost of any Node relay in a process of its own.
 * IPC (as controller-child.ts): {type:"ready"} once loaded; {cmd:"start", upstream:{host, port}} ->
 * {type:"started", port} (listening on 127.0.0.1, a free port); {cmd:"stats"} -> {type:"stats",
 * connections, rss, heapUsed, cpuUs, cpuSystemUs} (cpuUs: user + system; cpuSystemUs: the kernel's part);
 * {cmd:"close"} -> exits.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { processStats } from "./child-stats.js";

let server: Server | undefined;
let connections = 0;

/** forward joins a switch's connection to a new one to the upstream; either end's close ends both. */
function forward(sock: Socket, upstream: { host: string; port: number }): void {
  connections++;
  // Nagle off on both legs, as the rfboot relay and the direct path have it; bytes the switch sends
  // before the upstream leg is connected are buffered by the socket until it is.
  sock.setNoDelay(true);
  const up = connect({ host: upstream.host, port: upstream.port, noDelay: true });
  sock.pipe(up);
  up.pipe(sock);
  const end = () => {
    sock.destroy();
    up.destroy();
  };
  sock.once("close", end);
  up.once("close", end);
  sock.on("error", () => undefined);
  up.on("error", () => undefined);
  sock.once("close", () => connections--);
}

process.on("message", (m: { cmd: string; upstream?: { host: string; port: number } }) => {
  switch (m.cmd) {
    case "start": {
      const upstream = m.upstream!;
      server = createServer({ noDelay: true }, (sock) => forward(sock, upstream));
      server.listen({ host: "127.0.0.1", port: 0 }, () => {
        const a = server!.address();
        process.send!({ type: "started", port: typeof a === "object" && a ? a.port : 0 });
      });
      break;
    }
    case "stats":
      process.send!({ type: "stats", connections, ...processStats() });
      break;
    case "close":
      // Connections are the bench's to end; do not wait for them.
      process.exit(0);
  }
});
process.send!({ type: "ready" });
