/**
 * bench/lib/test-domains.ts: the minimal test-driver domains the lifecycle benches define and start: names
 * `rfbtv-<letter>NNNN` with stable uuids, and a count of those running on a host.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const pexec = promisify(execFile);

/** testDomains names one bench's domains by `letter` (one hex digit, also the uuid's first). */
export function testDomains(letter: string) {
  const prefix = `rfbtv-${letter}`;
  const name = (i: number) => `${prefix}${String(i).padStart(4, "0")}`;
  const uuid = (i: number) => `${letter}0000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const xml = (i: number) =>
    `<domain type='test'><name>${name(i)}</name><uuid>${uuid(i)}</uuid><memory unit='MiB'>128</memory>` +
    `<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`;
  /** runningCount counts this bench's domains running on `uri` (`virsh list --state-running`). */
  const runningCount = async (uri: string): Promise<number> => {
    const { stdout } = await pexec("virsh", ["-c", uri, "list", "--name", "--state-running"], {
      env: { ...process.env, LC_ALL: "C" },
    });
    return stdout.split("\n").filter((l) => l.startsWith(prefix)).length;
  };
  return { name, uuid, xml, runningCount };
}
