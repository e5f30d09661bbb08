import { describe, expect, it } from "vitest";
import { HostRegistry, summarize } from "../../../../src/provisioner/libvirt/hosts.js";
import { makeVirshError, type VirshRunner } from "../../../../src/provisioner/libvirt/virsh.js";

const hosts = [
  {
    name: "h1",
    uri: "test+unix:///default?socket=/run/a",
    maxVms: 4,
    memoryMiB: 1024,
    maxConcurrentStarts: 2,
    memoryReserveMiB: 256,
  },
  {
    name: "h2",
    uri: "test+unix:///default?socket=/run/b",
    maxVms: 8,
    memoryMiB: 2048,
    maxConcurrentStarts: 2,
  },
];

const run: VirshRunner = async (uri, args, opts) => {
  expect(opts?.timeoutMs).toBeLessThanOrEqual(5000);
  if (uri.endsWith("/run/b")) {
    throw makeVirshError(
      uri,
      args,
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/b': No such file or directory\n",
      1,
    );
  }
  if (args[0] === "list" && args.includes("--uuid")) {
    return {
      stdout:
        "6695eb01-f6a4-8304-79aa-97f2502e193f test\n11111111-2222-3333-4444-555555555555 rfvmA\n22222222-2222-3333-4444-555555555555 rfvmB\n",
      stderr: "",
    };
  }
  if (args[0] === "list") return { stdout: "\n", stderr: "" };
  if (args[0] === "nodeinfo") {
    return {
      stdout: "CPU model:           x86_64\nCPU(s):              2\nMemory size:         4194304 KiB\n",
      stderr: "",
    };
  }
  if (args[0] === "nodememstats") {
    return {
      stdout: "total  :  4194304 KiB\nfree   :  102400 KiB\nbuffers:  20480 KiB\ncached :  61440 KiB\n",
      stderr: "",
    };
  }
  if (args[0] === "domstats") {
    return {
      stdout:
        "Domain: 'test'\n  state.state=1\n  state.reason=0\nDomain: 'rfvmA'\n  state.state=1\n  state.reason=1\n  balloon.current=262144\n  cpu.time=5000\nDomain: 'rfvmB'\n  state.state=5\n  state.reason=2\n",
      stderr: "",
    };
  }
  throw new Error(`unexpected ${args.join(" ")}`);
};

describe("HostRegistry", () => {
  it("probes reachability and figures; unreachable hosts carry the classified error", async () => {
    const reg = new HostRegistry({ hosts, run });
    const [p1, p2] = await reg.probeAll();
    expect(p1).toMatchObject({
      name: "h1",
      reachable: true,
      running: 2,
      memoryInUseMiB: 256,
      node: { cpus: 2, memoryMiB: 4096 },
      memory: { totalMiB: 4096, availableMiB: 180 },
    });
    expect(p1!.domains.find((d) => d.name === "rfvmA")).toMatchObject({
      cpuTimeNs: 5000n,
      memoryKiB: 262144,
    });
    expect(p2).toMatchObject({ name: "h2", reachable: false, running: 0 });
    expect(p2!.error).toMatch(/Failed to connect socket to '\/run\/b'.*\[unreachable\]/);
    expect(reg.capacities()).toEqual([
      {
        name: "h1",
        maxVms: 4,
        memoryMiB: 1024,
        reachable: true,
        // rfvmA runs with 256 MiB; `test` runs too but reports no memory; rfvmB is shut off.
        reported: { availableMiB: 180, totalMiB: 4096, reserveMiB: 256, heldMiB: new Map([["rfvmA", 256]]) },
      },
      { name: "h2", maxVms: 8, memoryMiB: 2048, reachable: false },
    ]);
    expect(
      reg.placements(
        (n) => n.startsWith("rfvm"),
        () => 128,
      ),
    ).toEqual([
      { vm: "rfvmA", host: "h1", memoryMiB: 128, running: true },
      { vm: "rfvmB", host: "h1", memoryMiB: 128, running: false },
    ]);
    expect(reg.locate("rfvmB")).toEqual(["h1"]);
    expect(reg.manager("h2").host.uri).toBe(hosts[1]!.uri);
    expect(() => reg.manager("zz")).toThrow(/unknown libvirt host zz/);
  });
  it("asks nodeinfo once per host and nodememstats each probe, except where the driver lacks it", async () => {
    const calls: string[] = [];
    const testDriver: VirshRunner = async (uri, args) => {
      calls.push(args[0]!);
      if (args[0] === "nodememstats") {
        throw makeVirshError(
          uri,
          args,
          "error: Unable to get number of memory stats\nerror: this function is not supported by the connection driver: virNodeGetMemoryStats\n",
          1,
        );
      }
      if (args[0] === "nodeinfo")
        return { stdout: "CPU(s):              16\nMemory size:         3145728 KiB\n", stderr: "" };
      return { stdout: "", stderr: "" };
    };
    const reg = new HostRegistry({ hosts: [hosts[0]!], run: testDriver });
    const first = await reg.probe("h1");
    await reg.probe("h1");
    expect(first).toMatchObject({ reachable: true, node: { cpus: 16, memoryMiB: 3072 } });
    expect(first.memory).toBeUndefined();
    expect(calls.filter((c) => c === "nodeinfo")).toHaveLength(1);
    expect(calls.filter((c) => c === "nodememstats")).toHaveLength(1);
    // No report: the configured limits alone.
    expect(reg.capacities()[0]!.reported).toBeUndefined();
    // The same host under another URI (a reload) is asked again.
    reg.setHosts([{ ...hosts[0]!, uri: "test:///default" }]);
    await reg.probe("h1");
    expect(calls.filter((c) => c === "nodememstats")).toHaveLength(2);
  });

  it("summarize counts active domains only", () => {
    expect(
      summarize([
        { name: "a", uuid: "", state: "paused", reason: 0, managedSave: false, memoryKiB: 2048 },
        { name: "b", uuid: "", state: "shutoff", reason: 0, managedSave: true, memoryKiB: 4096 },
      ]),
    ).toEqual({ running: 1, memoryInUseMiB: 2 });
  });
});

describe("HostRegistry storage", () => {
  const withStorage = {
    ...hosts[0]!,
    storageDir: "/srv/disks",
    consoleLogDir: "/srv/console",
    pool: "p1",
    images: "pool" as const,
    upload: true,
  };
  it("a host with storage fields gets its HostStorage; one without them has none", async () => {
    const reg = new HostRegistry({ hosts: [withStorage, hosts[1]!], run });
    expect(reg.storage("h1").spec).toEqual({
      pool: "p1",
      storageDir: "/srv/disks",
      consoleLogDir: "/srv/console",
      images: "pool",
      upload: true,
    });
    expect(() => reg.storage("h2")).toThrow(/h2 is unknown or has no storage configured/);
    await reg.dispose();
  });
  it("a reload that changes a host's storage gives it a new storage; an unchanged one keeps it", async () => {
    const reg = new HostRegistry({ hosts: [withStorage], run });
    const before = reg.storage("h1");
    reg.setHosts([{ ...withStorage }]);
    expect(reg.storage("h1")).toBe(before);
    reg.setHosts([{ ...withStorage, pool: "p2" }]);
    expect(reg.storage("h1")).not.toBe(before);
    expect(reg.storage("h1").spec.pool).toBe("p2");
    await reg.dispose();
  });
});
