/**
 * Redefining a domain that has a managed-save image, with the real QEMU driver: libvirt keeps the image
 * across `define` and its next start restores the old definition and guest state (here: the old memory
 * size and description), so the new definition never applies. DomainManager.ensureRunning with `redefine`
 * removes the image first; without `redefine` it restores it. A firmware-only domain (no disk, no kernel)
 * is enough: the save image holds its definition whatever the guest runs.
 */
import { afterAll, expect, it } from "vitest";
import { DomainManager } from "../../src/provisioner/libvirt/lifecycle.js";
import { VirshShellRunner } from "../../src/provisioner/libvirt/virsh.js";
import { describeWith } from "../helpers/env.js";

const URI = "qemu:///system";
const NAME = `rfbms-${process.pid}`;
const UUID = `5f0b0000-0000-4000-8001-${String(process.pid).padStart(12, "0")}`;

function xml(memoryMiB: number, description: string): string {
  return `<domain type='qemu'><name>${NAME}</name><uuid>${UUID}</uuid><memory unit='MiB'>${memoryMiB}</memory>
  <vcpu>1</vcpu><description>${description}</description>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`;
}

describeWith(["libvirt", "root"], "ensureRunning on a managed-saved QEMU domain", () => {
  const shell = new VirshShellRunner();
  const mgr = new DomainManager({ host: { name: "local", uri: URI }, run: shell.run });
  const live = async () => (await mgr.virsh(["dumpxml", NAME])).stdout;

  afterAll(async () => {
    await mgr.remove(NAME).catch(() => undefined);
    await mgr.dispose();
  });

  it("libvirt restores the old definition over a plain define; ensureRunning with redefine boots the new one", async () => {
    expect((await mgr.ensureRunning({ name: NAME, xml: xml(64, "first") })).action).toBe("defined+started");
    expect(await mgr.leave(NAME, "suspend")).toBe("saved");

    // What libvirt itself does: define keeps the image, start restores the saved (old) definition.
    await mgr.define(NAME, xml(96, "second"));
    expect((await mgr.dominfo(NAME))?.["Managed save"]).toBe("yes");
    await mgr.virsh(["start", NAME]);
    expect(await live()).toContain("<description>first</description>");
    expect(await mgr.leave(NAME, "suspend")).toBe("saved");

    // Without redefine the image is what the caller wants back: restored.
    const kept = await mgr.ensureRunning({ name: NAME, xml: xml(96, "second"), redefine: false });
    expect(kept).toMatchObject({ action: "started", restored: true });
    expect(await live()).toContain("<description>first</description>");
    expect(await mgr.leave(NAME, "suspend")).toBe("saved");

    // With redefine the stale image goes first: the domain boots the new definition.
    const r = await mgr.ensureRunning({ name: NAME, xml: xml(96, "third") });
    expect(r).toMatchObject({ action: "started", restored: false });
    const now = await live();
    expect(now).toContain("<description>third</description>");
    expect(now).toMatch(/<memory unit='KiB'>98304<\/memory>/);
    expect((await mgr.dominfo(NAME))?.["Managed save"]).toBe("no");
  }, 60_000);
});
