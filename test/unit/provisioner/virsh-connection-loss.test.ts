/** Connection-loss texts of libvirt 9.0 (libvirt.so / virsh strings) classify as `unreachable`, so they are retried. */
import { describe, expect, it } from "vitest";
import { classifyVirshStderr } from "../../../src/provisioner/virsh.js";

describe("virsh connection loss", () => {
  it.each([
    "error: Failed to start domain 'rfvmA'\nerror: internal error: received hangup event on socket",
    "error: failed to get domain 'rfvmA'\nerror: internal error: connection closed due to keepalive timeout",
    "error: Disconnected from test+unix:///default?socket=/run/x/libvirt-sock due to end of file",
    "error: Disconnected from qemu:///system due to I/O error",
    "error: Disconnected from qemu:///system due to keepalive timeout",
  ])("%s", (stderr) => {
    expect(classifyVirshStderr(stderr)).toBe("unreachable");
  });

  it("a domain that is really missing stays domain-missing", () => {
    expect(classifyVirshStderr("error: failed to get domain 'x'\nerror: Domain not found")).toBe(
      "domain-missing",
    );
  });
});
