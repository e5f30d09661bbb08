import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VirshError } from "../../../../src/common/errors.js";
import {
  classifyVirshStderr,
  createSpawnRunner,
  isAlreadyExists,
  isAlreadyRunning,
  isDomainMissing,
  isNotRunning,
  isUnreachable,
  isVirshTimeout,
  lastErrorLine,
  makeVirshError,
  quoteVirshArg,
} from "../../../../src/provisioner/libvirt/virsh.js";

/**
 * Real stderr texts, provoked on this machine (libvirt 9.0.0, Debian 12, LC_ALL=C) with the test, qemu and
 * remote drivers; see test/integration/libvirt-virsh.test.ts for the same cases provoked live.
 */
const VECTORS: readonly (readonly [string, string, string])[] = [
  // [kind, what provoked it, stderr]
  ["domain-missing", "domstate nosuch (test+unix, qemu)", "error: failed to get domain 'nosuch'\n"],
  [
    "domain-missing",
    "dominfo by unknown uuid",
    "error: failed to get domain '11111111-0000-0000-0000-000000000000'\n",
  ],
  ["domain-missing", "older libvirt wording", "error: Domain not found: no domain with matching name 'x'\n"],
  [
    "already-exists",
    "define same name, other uuid (test and qemu)",
    "error: Failed to define domain from /tmp/t2.xml\nerror: operation failed: domain 'rfbtv-probe' already exists with uuid 11111111-2222-3333-4444-555555555555\n",
  ],
  [
    "already-exists",
    "define same uuid, other name",
    "error: Failed to define domain from /tmp/t3.xml\nerror: operation failed: domain 'rfbtv-probe' is already defined with uuid 11111111-2222-3333-4444-555555555555\n",
  ],
  [
    "already-exists",
    "create same uuid, other name",
    "error: Failed to create domain from /tmp/t3.xml\nerror: operation failed: domain 'rfbtv-probe' is already defined with uuid 11111111-2222-3333-4444-555555555555\n",
  ],
  ["already-running", "start of a running domain", "error: Domain is already active\n"],
  [
    "already-running",
    "resume of a running qemu domain",
    "error: Failed to resume domain 'rfbtv-q1'\nerror: Requested operation is not valid: domain is already running\n",
  ],
  [
    "not-running",
    "destroy of a shut-off domain",
    "error: Failed to destroy domain 'rfbtv-probe'\nerror: Requested operation is not valid: domain is not running\n",
  ],
  [
    "not-running",
    "managedsave of a shut-off domain",
    "error: Failed to save domain 'rfbtv-probe' state\nerror: Requested operation is not valid: domain is not running\n",
  ],
  [
    "not-running",
    "shutdown of a shut-off test domain",
    "error: Failed to shutdown domain 'rfbtv-probe'\nerror: internal error: domain 'rfbtv-probe' not running\n",
  ],
  [
    "not-running",
    "suspend of a paused test domain",
    "error: Failed to suspend domain 'rfbtv-probe'\nerror: internal error: domain 'rfbtv-probe' not running\n",
  ],
  [
    "unreachable",
    "unix socket missing",
    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/nonexistent/sock': No such file or directory\n",
  ],
  [
    "unreachable",
    "tcp refused",
    "error: failed to connect to the hypervisor\nerror: unable to connect to server at '127.0.0.1:1': Connection refused\n",
  ],
  [
    "unreachable",
    "ssh host unknown",
    "error: failed to connect to the hypervisor\nerror: Cannot recv data: ssh: Could not resolve hostname nohost.invalid: Name or service not known: Connection reset by peer\n",
  ],
  [
    "unreachable",
    "libvirtd killed under an open shell",
    "error: Disconnected from test+unix:///default?socket=/run/rfbt-hosts/h2/libvirt-sock due to end of file\nerror: Failed to reconnect to the hypervisor\nerror: Failed to connect socket to '/run/rfbt-hosts/h2/libvirt-sock': No such file or directory\n",
  ],
  [
    "unreachable",
    "unknown driver",
    "error: failed to connect to the hypervisor\nerror: no connection driver available for bogus:///x\n",
  ],
  [
    "other",
    "resume of a running test domain (test driver wording)",
    "error: Failed to resume domain 'rfbtv-probe'\nerror: internal error: domain 'rfbtv-probe' not paused\n",
  ],
  [
    "other",
    "bad XML",
    "error: Failed to define domain from /tmp/bad.xml\nerror: (domain_definition):2: Couldn't find end of Start Tag domain line 1\n(null)\n^\n",
  ],
  [
    "other",
    "invalid attribute",
    "error: Failed to define domain from /tmp/q1.xml\nerror: XML error: Invalid value for attribute 'type' in element 'graphics': 'none'.\n",
  ],
  ["other", "missing file", "error: Failed to open file '/nonexistent.xml': No such file or directory\n"],
  // Storage pools and volumes, as libvirt 9.0 printed them on the lab machine (qemu:///system, test driver).
  [
    "pool-missing",
    "pool-info of an undefined pool",
    "error: failed to get pool 'nosuch'\nerror: Storage pool not found: no storage pool with matching name 'nosuch'\n",
  ],
  ["pool-inactive", "vol-path in a stopped pool", "error: pool 'rfbtexp' is not active\n"],
  [
    "volume-missing",
    "vol-path of an absent volume",
    "error: failed to get vol 'nosuch'\nerror: Storage volume not found: no storage vol with matching path 'nosuch'\n",
  ],
  [
    "volume-exists",
    "vol-create-as of a listed volume",
    "error: Failed to create vol base.qcow2\nerror: storage volume 'base.qcow2' exists already\n",
  ],
  [
    "volume-exists",
    "vol-create-as over a file the pool has not listed yet",
    "error: Failed to create vol outside.img\nerror: Requested operation is not valid: volume target path '/tmp/rfbt-exp/pool/outside.img' already exists\n",
  ],
  [
    "volume-exists",
    "vol-create-from with a taken name",
    "error: Failed to create vol from /tmp/ov.xml\nerror: internal error: storage volume name 'vm3.qcow2' already in use.\n",
  ],
  [
    "unsupported",
    "vol-upload on the test driver",
    "error: cannot upload to volume c.qcow2\nerror: this function is not supported by the connection driver: virStorageVolUpload\n",
  ],
  [
    "other",
    "a second pool over a target",
    "error: Failed to define pool rfbtexp2\nerror: operation failed: Storage source conflict with pool: 'rfbtexp'\n",
  ],
  // Unexpected, localised or truncated output must not crash, and must not be mistaken for a known kind.
  ["other", "localised (de)", "Fehler: Domain 'x' konnte nicht abgerufen werden\n"],
  ["other", "truncated", "error: failed to get dom"],
  ["other", "empty", ""],
  ["other", "binary garbage", "\u0000\u00ff\ufffd\n\n"],
];

describe("classifyVirshStderr", () => {
  it.each(VECTORS)("%s <- %s", (kind, _what, stderr) => {
    expect(classifyVirshStderr(stderr)).toBe(kind);
  });
});

describe("makeVirshError", () => {
  it("keeps args, stderr and exit code, and names the failure in the message", () => {
    const stderr = VECTORS[3]![2];
    const e = makeVirshError("qemu+tcp://u:secret@h/system", ["define", "/tmp/x.xml"], stderr, 1);
    expect(e).toBeInstanceOf(VirshError);
    expect(e.kind).toBe("already-exists");
    expect(e.args).toEqual(["define", "/tmp/x.xml"]);
    expect(e.stderr).toBe(stderr);
    expect(e.exitCode).toBe(1);
    expect(e.message).toContain("already exists with uuid 11111111-2222-3333-4444-555555555555");
    expect(e.message).toContain("virsh -c qemu+tcp://u:***@h/system define /tmp/x.xml");
    expect(e.message).not.toContain("secret");
  });
  it("forces kind timeout", () => {
    const e = makeVirshError("test:///default", ["start", "x"], "", undefined, {
      timedOut: true,
      timeoutMs: 50,
    });
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("timed out after 50 ms");
  });
  it("predicates match their kind only", () => {
    const mk = (s: string) => makeVirshError("test:///default", ["x"], s, 1);
    const missing = mk(VECTORS[0]![2]);
    expect(isDomainMissing(missing)).toBe(true);
    expect(isAlreadyExists(missing)).toBe(false);
    expect(isAlreadyRunning(mk("error: Domain is already active"))).toBe(true);
    expect(isNotRunning(mk("error: Requested operation is not valid: domain is not running"))).toBe(true);
    expect(isUnreachable(mk("error: failed to connect to the hypervisor"))).toBe(true);
    expect(isVirshTimeout(makeVirshError("u", [], "", undefined, { timedOut: true }))).toBe(true);
    expect(isDomainMissing(new Error("failed to get domain 'x'"))).toBe(false);
    expect(isDomainMissing(undefined)).toBe(false);
  });
  it("lastErrorLine picks the most specific line", () => {
    expect(lastErrorLine(VECTORS[8]![2])).toBe("Requested operation is not valid: domain is not running");
    expect(lastErrorLine("")).toBe("");
    expect(lastErrorLine("no prefix here\n")).toBe("no prefix here");
  });
});

describe("quoteVirshArg", () => {
  it("single-quotes and escapes quotes like a POSIX shell", () => {
    expect(quoteVirshArg("a b")).toBe("'a b'");
    expect(quoteVirshArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteVirshArg("x;y")).toBe("'x;y'");
  });
  it("refuses text the line protocol cannot carry", () => {
    expect(quoteVirshArg("a\nb")).toBeUndefined();
    expect(quoteVirshArg("a\0b")).toBeUndefined();
  });
});

describe("createSpawnRunner", () => {
  const dir = mkdtempSync(join(tmpdir(), "rfbtv-fakevirsh-"));
  const fake = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };
  it("passes -c URI then the exact argument array, with LC_ALL=C, and returns stdout", async () => {
    const run = createSpawnRunner({ virsh: fake("echoargs", 'printf "%s|" "$@"; printf "LC=%s" "$LC_ALL"') });
    const r = await run("test:///default", ["define", "/tmp/a b.xml", "it's"]);
    expect(r.stdout).toBe("-c|test:///default|define|/tmp/a b.xml|it's|LC=C");
  });
  it("classifies a failure from stderr and exit code", async () => {
    const run = createSpawnRunner({
      virsh: fake("fail", "echo \"error: failed to get domain 'x'\" >&2; exit 1"),
    });
    const e = await run("test:///default", ["domstate", "x"]).catch((x: unknown) => x);
    expect(isDomainMissing(e)).toBe(true);
    expect((e as VirshError).exitCode).toBe(1);
  });
  it("kills a hung call at its timeout", async () => {
    const run = createSpawnRunner({ virsh: fake("hang", "sleep 5") });
    const t0 = Date.now();
    const e = await run("test:///default", ["start", "x"], { timeoutMs: 150 }).catch((x: unknown) => x);
    expect(isVirshTimeout(e)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
  it("a missing executable is a VirshError of kind other, not a crash", async () => {
    const run = createSpawnRunner({ virsh: join(dir, "does-not-exist") });
    const e = await run("test:///default", ["list"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VirshError);
    expect((e as VirshError).kind).toBe("other");
    expect((e as VirshError).stderr).toMatch(/ENOENT|does-not-exist/);
  });
  it("feeds input on stdin", async () => {
    const run = createSpawnRunner({ virsh: fake("cat", "cat") });
    expect((await run("u", [], { input: "<domain/>" })).stdout).toBe("<domain/>");
  });
});
