/**
 * Real-peer test gating. Integration tests call `needs(...)` for the components they use.
 * Under CI=true a missing component fails the test (never a skip); elsewhere it skips with the reason.
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { describe } from "vitest";
import { portOpen } from "./real.js";

export const IN_CI = process.env.CI === "true" || process.env.CI === "1";

/** SHARED is `../shared` beside the repo (test vectors, RouteFlow data); override with RFBOOT_SHARED. */
export const SHARED = process.env.RFBOOT_SHARED ?? resolve(import.meta.dirname, "../../../shared");

/** REPO is the repository root. */
export const REPO = resolve(import.meta.dirname, "../..");

export type Component =
  | "ovs"
  | "libvirt"
  | "mongo"
  | "mininet"
  | "virt-xml-validate"
  | "qemu-img"
  | "systemd-analyze"
  | "root"
  | "netns"
  | "sshd"
  | "promtool"
  | "chromium";

function ok(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 10_000, env: { ...process.env, LC_ALL: "C" } });
    return true;
  } catch {
    return false;
  }
}

/** MONGO_URI for tests: RFBOOT_TEST_MONGO_URI or the lab's 127.0.0.1:27017. */
export const MONGO_URI = process.env.RFBOOT_TEST_MONGO_URI ?? "mongodb://127.0.0.1:27017";

const cache = new Map<Component, Promise<boolean>>();

/** available reports whether a real component is there and answering. */
export function available(c: Component): Promise<boolean> {
  let p = cache.get(c);
  if (!p) {
    p = (async () => {
      switch (c) {
        case "ovs":
          return ok("ovs-vsctl", ["--timeout=3", "show"]);
        case "libvirt":
          return ok("virsh", ["-c", "qemu:///system", "version"]);
        case "mongo":
          return portOpen(Number(new URL(MONGO_URI).port || 27017));
        case "mininet":
          return ok("which", ["mn"]);
        case "virt-xml-validate":
          // virt-xml-validate is a shell script around xmllint (Debian's libxml2-utils): both must be there.
          return ok("which", ["virt-xml-validate"]) && ok("which", ["xmllint"]);
        case "qemu-img":
          return ok("which", ["qemu-img"]);
        case "systemd-analyze":
          return ok("which", ["systemd-analyze"]);
        case "root":
          return process.getuid?.() === 0;
        case "netns":
          // Namespace hosts (test/helpers/netns-hosts.ts): iproute2's netns, util-linux, tini as their reaper.
          return ok("ip", ["netns", "list"]) && ok("which", ["unshare", "nsenter", "tini"]);
        case "sshd":
          // An sshd the tests start themselves (openssh-server), and the client side.
          return ok("test", ["-x", "/usr/sbin/sshd"]) && ok("which", ["ssh", "ssh-keygen"]);
        case "promtool":
          // Debian's `prometheus` package.
          return ok("promtool", ["--version"]);
        case "chromium":
          // Debian's `chromium`, driven headless by the live page's browser test.
          return ok("chromium", ["--headless", "--version"]);
      }
    })();
    cache.set(c, p);
  }
  return p;
}

/**
 * describeWith declares a suite that needs real components. Missing under CI: the suite fails.
 * Missing elsewhere: the suite is skipped, and the reason is printed.
 */
export function describeWith(components: Component[], name: string, fn: () => void): void {
  const missing = Promise.all(components.map(async (c) => ((await available(c)) ? undefined : c))).then(
    (xs) => xs.filter((x): x is Component => x !== undefined),
  );
  describe(name, async () => {
    const m = await missing;
    if (m.length > 0 && !IN_CI) {
      describe.skip(`${name} (missing: ${m.join(", ")})`, fn);
      return;
    }
    if (m.length > 0) {
      throw new Error(`CI=true but required components are missing: ${m.join(", ")}`);
    }
    fn();
  });
}
