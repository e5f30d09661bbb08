/** Connection-loss texts of libvirt 9.0 (libvirt.so / virsh strings) classify as `unreachable`, so they are retried. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VirshError } from "../../../../src/common/errors.js";
import { classifyVirshStderr, createSpawnRunner } from "../../../../src/provisioner/libvirt/virsh.js";

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

  it("a virsh killed by SIGPIPE (libvirtd closed the connection mid-write, nothing printed) is unreachable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rfbt-sigpipe-"));
    try {
      const fake = join(dir, "virsh");
      writeFileSync(fake, "#!/bin/sh\nkill -PIPE $$\n");
      chmodSync(fake, 0o755);
      const run = createSpawnRunner({ virsh: fake });
      const err = await run("test:///default", ["start", "vm1"]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VirshError);
      expect((err as VirshError).kind).toBe("unreachable");
      expect((err as VirshError).message).toContain("SIGPIPE");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
