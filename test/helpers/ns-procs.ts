/**
 * Processes and namespaces for the test rigs that run daemons in namespaces of their own (libvirt-hosts.ts,
 * netns-hosts.ts): which namespace a process is in, every process of a namespace, and waiting for a child to
 * exit. A namespace is named by its `/proc/PID/ns/KIND` link (`mnt:[4026532...]`), which stays valid as an
 * identity after the namespace is gone.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";

/** NsKind is a namespace type as named under /proc/PID/ns. */
export type NsKind = "mnt" | "net";

/** nsOf returns the `KIND:[inode]` identity of process `pid`'s namespace, or undefined when it is gone. */
export function nsOf(pid: number, kind: NsKind = "mnt"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** pidsInNs lists the processes (but `except` and this one) whose `kind` namespace is `ns`. */
export function pidsInNs(ns: string, except: number, kind: NsKind = "mnt"): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === except || pid === process.pid) continue;
    if (nsOf(pid, kind) === ns) out.push(pid);
  }
  return out;
}

/** waitExit resolves true once `child` has exited, or false after `ms`. */
export async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((res) => {
    const t = setTimeout(() => res(false), ms);
    child.once("exit", () => {
      clearTimeout(t);
      res(true);
    });
  });
}
