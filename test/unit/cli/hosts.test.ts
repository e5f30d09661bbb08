/** `rfboot hosts`' rows and the capacity text `rfboot hosts` and `rfboot status` print per host. */
import { describe, expect, it } from "vitest";
import { hostRows, reportedText } from "../../../src/cli/commands/hosts.js";
import type { HostProbe, HostSpec } from "../../../src/provisioner/index.js";

const spec = (name: string): HostSpec => ({
  name,
  uri: `qemu+unix:///system?socket=/run/${name}`,
  maxVms: 8,
  memoryMiB: 2048,
  maxConcurrentStarts: 2,
  memoryReserveMiB: 256,
});
const probe = (name: string, extra: Partial<HostProbe>): HostProbe => ({
  name,
  uri: spec(name).uri,
  reachable: true,
  latencyMs: 1,
  domains: [],
  running: 0,
  memoryInUseMiB: 0,
  probedAt: new Date(0),
  ...extra,
});

describe("hosts' reported capacity", () => {
  it("rows carry CPUs, memory size, available memory and the reserve; the text says what is known", () => {
    const rows = hostRows(
      [spec("qemu"), spec("test"), spec("down")],
      [
        probe("qemu", { node: { cpus: 2, memoryMiB: 7129 }, memory: { totalMiB: 4096, availableMiB: 180 } }),
        probe("test", { node: { cpus: 16, memoryMiB: 3072 } }),
        probe("down", { reachable: false, error: "no answer" }),
      ],
      () => true,
    );
    expect(rows.map((r) => [r.cpus, r.hostMemoryMiB, r.availableMiB, r.memoryReserveMiB])).toEqual([
      [2, 7129, 180, 256],
      [16, 3072, null, 256],
      [null, null, null, 256],
    ]);
    expect(rows.map(reportedText)).toEqual([
      "2 CPUs, 180/7129 MiB available (reserve 256)",
      "16 CPUs, 3072 MiB, no memory report",
      "-",
    ]);
  });
});
