/**
 * xmlgen's public face, pinned: adding or removing a name from src/xmlgen/index.ts fails here, so
 * that a change to what other modules may use is made on purpose (and this list updated). Internals
 * that tests need are imported from their own module files, never added to the face.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "../controller/public-face.js";

const VALUES = [
  "ARCHES",
  "CRASH_ACTIONS",
  "DRIVERS",
  "HYPERVISOR_NAMES",
  "IFNAMSIZ_MAX",
  "LIFECYCLE_ACTIONS",
  "MAX_DATA_PORTS",
  "buildDomainXml",
  "buildInterfaceXml",
  "hypervisorFromName",
  "routeflowDataMac",
  "routeflowDataMacs",
  "routeflowDeviceName",
  "routeflowInterfaces",
  "stableUuid",
  "validateVmDescription",
  "VLAN_TAG_MAX",
  "VLAN_TAG_MIN",
];

const TYPES = [
  "Arch",
  "Boot",
  "Console",
  "CrashAction",
  "Disk",
  "DiskFormat",
  "DiskSource",
  "DriverTraits",
  "Filesystem",
  "Hypervisor",
  "HypervisorName",
  "Interface",
  "Lifecycle",
  "LifecycleAction",
  "ManagementAttachment",
  "RouteflowNicOptions",
  "VirtualPort",
  "Vlan",
  "VmDescription",
];

describe("src/xmlgen/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../src/xmlgen/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
