/**
 * The ovs-vsctl seam: exact argument arrays through the process seam, its JSON tables read back, and each
 * failure an OvsError of the right kind that names the call and the fix.
 */
import { describe, expect, it } from "vitest";
import { OvsError } from "../../../src/common/errors.js";
import type { ProcessSeam, RunOutcome } from "../../../src/provisioner/libvirt/index.js";
import type { RunRequest } from "../../../src/provisioner/libvirt/process.js";
import { classifyOvs, ovsVsctl, parsePortRows } from "../../../src/provisioner/ovs.js";

type Reply = Partial<Pick<RunOutcome, "stdout" | "stderr" | "exitCode" | "timedOut">>;

/** scripted is a ProcessSeam answering each call from `reply` and recording the requests. */
function scripted(reply: (args: readonly string[]) => Reply): { seam: ProcessSeam; calls: RunRequest[] } {
  const calls: RunRequest[] = [];
  const seam: ProcessSeam = {
    run(req) {
      calls.push(req);
      const r = reply(req.args);
      const exitCode = "exitCode" in r ? r.exitCode : 0;
      const outcome: RunOutcome = {
        file: req.file,
        args: req.args,
        stdout: r.stdout ?? "",
        stderr: r.stderr ?? "",
        ...(exitCode !== undefined ? { exitCode } : {}),
        timedOut: r.timedOut ?? false,
        failed: exitCode !== 0 || r.timedOut === true,
        summary: exitCode === undefined ? "spawn ovs-vsctl ENOENT" : "",
        detail: undefined,
      };
      const err = req.classify(outcome);
      return err ? Promise.reject(err) : Promise.resolve(outcome);
    },
    spawn() {
      throw new Error("not used");
    },
  };
  return { seam, calls };
}

const TABLE = JSON.stringify({
  data: [
    ["rfvmA.1", ["set", []], ["map", [["rfboot-vm", "rfvmA"]]]],
    [
      "rfvmA.1t",
      5,
      [
        "map",
        [
          ["rfboot-vm", "rfvmA"],
          ["rfboot-vm-port", "1"],
        ],
      ],
    ],
  ],
  headings: ["name", "tag", "external_ids"],
});

describe("ovsVsctl", () => {
  it("addPatchPair: one transaction, both ends --may-exist, peers, the trunk end's tag, sorted external_ids", async () => {
    const { seam, calls } = scripted(() => ({}));
    await ovsVsctl({ processes: seam }).addPatchPair(
      {
        bridge: "trunk0",
        name: "rfvmA.1t",
        tag: 5,
        externalIds: { "rfboot-vm": "rfvmA", "rfboot-host": "far" },
      },
      { bridge: "dp0", name: "rfvmA.1", externalIds: { "rfboot-vm": "rfvmA" } },
    );
    expect(calls).toHaveLength(1);
    expect(calls[0]!.file).toBe("ovs-vsctl");
    expect(calls[0]!.timeoutMs).toBe(10_000);
    expect(calls[0]!.args).toEqual([
      "--timeout=9",
      "--may-exist",
      "add-port",
      "trunk0",
      "rfvmA.1t",
      "--",
      "set",
      "interface",
      "rfvmA.1t",
      "type=patch",
      "options:peer=rfvmA.1",
      "--",
      "set",
      "port",
      "rfvmA.1t",
      "tag=5",
      'external_ids:rfboot-host="far"',
      'external_ids:rfboot-vm="rfvmA"',
      "--",
      "--may-exist",
      "add-port",
      "dp0",
      "rfvmA.1",
      "--",
      "set",
      "interface",
      "rfvmA.1",
      "type=patch",
      "options:peer=rfvmA.1t",
      "--",
      "set",
      "port",
      "rfvmA.1",
      'external_ids:rfboot-vm="rfvmA"',
    ]);
  });

  it("findPorts and bridgePorts read the JSON table (a bridge's ports only); an empty bridge asks nothing more", async () => {
    const { seam, calls } = scripted((args) =>
      args.includes("list-ports")
        ? { stdout: args.includes("empty") ? "" : "rfvmA.1t\n" }
        : { stdout: TABLE },
    );
    const ovs = ovsVsctl({ processes: seam, timeoutMs: 3000 });
    const rows = [
      { name: "rfvmA.1", externalIds: { "rfboot-vm": "rfvmA" } },
      { name: "rfvmA.1t", tag: 5, externalIds: { "rfboot-vm": "rfvmA", "rfboot-vm-port": "1" } },
    ];
    expect(await ovs.findPorts("rfboot-vm", "rfvmA")).toEqual(rows);
    expect(calls[0]!.args).toEqual([
      "--timeout=2",
      "--format=json",
      "--columns=name,tag,external_ids",
      "find",
      "port",
      'external_ids:rfboot-vm="rfvmA"',
    ]);
    // Every port is read, and only the bridge's own kept.
    expect(await ovs.bridgePorts("trunk0")).toEqual([rows[1]]);
    expect(calls.slice(1).map((c) => c.args)).toEqual([
      ["--timeout=2", "list-ports", "trunk0"],
      ["--timeout=2", "--format=json", "--columns=name,tag,external_ids", "list", "port"],
    ]);
    expect(await ovs.bridgePorts("empty")).toEqual([]);
    expect(calls).toHaveLength(4);
  });

  it("deletePorts: --if-exists del-port per name in one call; none: no call", async () => {
    const { seam, calls } = scripted(() => ({}));
    const ovs = ovsVsctl({ processes: seam });
    await ovs.deletePorts([]);
    await ovs.deletePorts(["a", "b"]);
    expect(calls.map((c) => c.args)).toEqual([
      ["--timeout=9", "--if-exists", "del-port", "a", "--", "--if-exists", "del-port", "b"],
    ]);
  });

  it("Open vSwitch down: an OvsError `unreachable` naming the call, what ovs-vsctl said and what to start", async () => {
    const { seam } = scripted(() => ({
      exitCode: 1,
      stderr:
        "ovs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed (No such file or directory)\n",
    }));
    const err = (await ovsVsctl({ processes: seam })
      .bridgePorts("x")
      .catch((e: unknown) => e)) as OvsError;
    expect(err).toBeInstanceOf(OvsError);
    expect(err.kind).toBe("unreachable");
    expect(err.args).toEqual(["--timeout=9", "list-ports", "x"]);
    expect(err.message).toMatch(
      /^ovs-vsctl --timeout=9 list-ports x failed: ovs-vsctl: unix:.*database connection failed/,
    );
    expect(err.message).toMatch(/ovs-ctl start/);
  });

  it("a missing bridge, a name on another bridge, a timeout, no ovs-vsctl: each its kind", async () => {
    const cases: [Reply, string][] = [
      [{ exitCode: 1, stderr: "ovs-vsctl: no bridge named trunk0\n" }, "bridge-missing"],
      [
        {
          exitCode: 1,
          stderr:
            "ovs-vsctl: cannot create a port named rfvmA.1 because a port named rfvmA.1 already exists on bridge br1\n",
        },
        "port-exists",
      ],
      [{ exitCode: 142, stderr: "ovs-vsctl: timeout after 9 seconds\n" }, "timeout"],
      [{ exitCode: undefined, timedOut: true }, "timeout"],
      [{ exitCode: undefined }, "unreachable"],
      [{ exitCode: 1, stderr: "ovs-vsctl: something else\n" }, "other"],
    ];
    for (const [reply, kind] of cases) {
      const { seam } = scripted(() => reply);
      const err = (await ovsVsctl({ processes: seam })
        .bridgePorts("trunk0")
        .catch((e: unknown) => e)) as OvsError;
      expect(err, kind).toBeInstanceOf(OvsError);
      expect(err.kind, JSON.stringify(reply)).toBe(kind);
      expect(
        classifyOvs({
          stderr: reply.stderr ?? "",
          exitCode: reply.exitCode,
          timedOut: reply.timedOut ?? false,
        }),
      ).toBe(kind);
    }
  });

  it("output that is not ovs-vsctl's JSON table is an OvsError, not a crash", () => {
    expect(() => parsePortRows("name tag\n", ["find"])).toThrow(OvsError);
    expect(parsePortRows('{"data":[],"headings":["name"]}', [])).toEqual([]);
  });
});
