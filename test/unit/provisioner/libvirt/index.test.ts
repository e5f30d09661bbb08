/**
 * The libvirt wing's face, pinned: adding or removing a name from src/provisioner/libvirt/index.ts fails
 * here, so that a change to what the rest of the provisioner may use from provisioner/libvirt is made on
 * purpose (and this list updated). Internals that unit tests need are imported from their own module files.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "../../controller/public-face.js";

const VALUES = [
  "DomainManager",
  "HostRegistry",
  "HostStorage",
  "LibvirtEvents",
  "NicHotplug",
  "VirshShellRunner",
  "createSpawnRunner",
  "diskPlanFrom",
  "isActive",
  "lastErrorLine",
  "processes",
  "makeVirshError",
  "recordStateOf",
  "watchDomainConsole",
];

const TYPES = [
  "Artifact",
  "ConsoleMatch",
  "ConsoleSpawn",
  "ConsoleTimers",
  "DataNic",
  "DiskPlan",
  "DomainEvent",
  "DomainInfo",
  "DomainState",
  "HostProbe",
  "HostSpec",
  "HotplugResult",
  "KnownDomainState",
  "LeaveAction",
  "LeaveOutcome",
  "ProcessSeam",
  "RunOutcome",
  "StorageInspection",
  "StorageSpec",
  "VirshRunner",
  "WatchConsoleOptions",
];

describe("src/provisioner/libvirt/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../../src/provisioner/libvirt/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
