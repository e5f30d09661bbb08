/** Process liveness read from /proc, where a zombie counts as dead. */
import { readFileSync } from "node:fs";

/**
 * processState returns the state letter of process `pid` from /proc/PID/stat (`R`, `S`, `D`, `Z`, ...), or
 * undefined when there is no such process or no /proc. The command name in that line may hold spaces and
 * parentheses, so the state is the first field after the last `)`.
 */
export function processState(pid: number, procRoot = "/proc"): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const end = stat.lastIndexOf(")");
  return end < 0
    ? undefined
    : stat
        .slice(end + 1)
        .trim()
        .split(" ")[0];
}

/**
 * processAlive says whether process `pid` runs. A zombie is dead: where PID 1 does not reap orphans, a killed
 * process stays in the table as a zombie, and `kill(pid, 0)` still succeeds on it. Without /proc the signal
 * probe decides (EPERM: it exists but belongs to someone else).
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const state = processState(pid);
  return state !== "Z" && state !== "X";
}
