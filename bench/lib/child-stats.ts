/**
 * bench/lib/child-stats.ts: what every bench child process (controller-child, upstream-child, pipe-child)
 * reports on {cmd:"stats"}: its memory and its CPU time so far.
 */

/** ProcessStats: RSS and heap (bytes), CPU time (µs; user + system, and the system part alone). */
export interface ProcessStats {
  rss: number;
  heapUsed: number;
  cpuUs: number;
  cpuSystemUs: number;
}

/** processStats reads this process's ProcessStats now. */
export function processStats(): ProcessStats {
  const u = process.cpuUsage();
  const mem = process.memoryUsage();
  return { rss: mem.rss, heapUsed: mem.heapUsed, cpuUs: u.user + u.system, cpuSystemUs: u.system };
}
