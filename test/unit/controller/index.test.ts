/**
 * The controller's public face, pinned: adding or removing a name from src/controller/index.ts fails
 * here, so that a change to what other modules may use is made on purpose (and this list updated).
 * Internals that tests need are imported from their own module files, never added to the face.
 */
import { describe, expect, it } from "vitest";
import { publicFace } from "./public-face.js";

const VALUES = [
  "Controller",
  "Framer",
  "OFP_VERSIONS",
  "buildHello",
  "createController",
  "decodeMessage",
  "encodeMessage",
  "eventToJson",
  "msgTypeName",
  "tlsServer",
  "versionName",
  "withNames",
];

const TYPES = [
  "AcceptStats",
  "ControllerEvent",
  "ControllerEvents",
  "ControllerMode",
  "ControllerOptions",
  "DatapathInfo",
  "DownEvent",
  "FramerOptions",
  "ListenAddress",
  "Named",
  "OfMessage",
  "OfVersionName",
  "Port",
  "PortEvent",
  "PortInfo",
  "PortReason",
  "RoleSetting",
  "ServerFactory",
  "TlsServerOptions",
  "UpEvent",
];

describe("src/controller/index.ts", () => {
  it("exports exactly the pinned names, values and types, through explicit lists", async () => {
    const face = await publicFace(new URL("../../../src/controller/index.ts", import.meta.url));
    expect(face.values).toEqual([...VALUES].sort());
    expect(face.types).toEqual([...TYPES].sort());
  });
});
