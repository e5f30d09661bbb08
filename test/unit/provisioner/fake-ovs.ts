/**
 * FakeOvs: an in-memory Open vSwitch behind the data plane's OvsSeam, with ovs-vsctl's rules where they
 * matter: a port name is unique across bridges (`--may-exist add-port` of a name on another bridge fails),
 * a missing bridge is an OvsError `bridge-missing`, and `down` makes every call `unreachable`.
 */
import { OvsError } from "../../../src/common/errors.js";
import type { OvsPort, OvsSeam, PatchEnd } from "../../../src/provisioner/ovs.js";

/** FakePort is one port of the fake switch. */
export interface FakePort {
  bridge: string;
  name: string;
  tag?: number;
  peer?: string;
  externalIds: Record<string, string>;
}

export class FakeOvs implements OvsSeam {
  readonly bridges = new Set<string>();
  readonly ports = new Map<string, FakePort>();
  /** calls lists the seam methods called, in order. */
  readonly calls: string[] = [];
  down = false;
  /** beforeAdd runs at the start of each addPatchPair (to interleave concurrent callers). */
  beforeAdd: (() => Promise<void>) | undefined;

  constructor(bridges: readonly string[] = []) {
    for (const b of bridges) this.bridges.add(b);
  }

  private check(what: string): void {
    this.calls.push(what);
    if (this.down) {
      throw new OvsError(
        "ovs-vsctl: unix:/var/run/openvswitch/db.sock: database connection failed (No such file or directory)",
        "unreachable",
        [what],
        "database connection failed",
        1,
      );
    }
  }

  private row(p: FakePort): OvsPort {
    return {
      name: p.name,
      ...(p.tag !== undefined ? { tag: p.tag } : {}),
      externalIds: { ...p.externalIds },
    };
  }

  /** on lists the port names of `bridge`, sorted. */
  on(bridge: string): string[] {
    return [...this.ports.values()]
      .filter((p) => p.bridge === bridge)
      .map((p) => p.name)
      .sort();
  }

  /** tagOf is the tag of port `name`. */
  tagOf(name: string): number | undefined {
    return this.ports.get(name)?.tag;
  }

  bridgePorts(bridge: string): Promise<OvsPort[]> {
    this.check("bridgePorts");
    if (!this.bridges.has(bridge)) {
      throw new OvsError(
        `ovs-vsctl: no bridge named ${bridge}`,
        "bridge-missing",
        ["list-ports", bridge],
        "",
        1,
      );
    }
    return Promise.resolve(
      [...this.ports.values()].filter((p) => p.bridge === bridge).map((p) => this.row(p)),
    );
  }

  findPorts(key: string, value: string): Promise<OvsPort[]> {
    this.check("findPorts");
    return Promise.resolve(
      [...this.ports.values()].filter((p) => p.externalIds[key] === value).map((p) => this.row(p)),
    );
  }

  async addPatchPair(a: PatchEnd, b: PatchEnd): Promise<void> {
    this.check("addPatchPair");
    await this.beforeAdd?.();
    // One transaction: every check before any change.
    for (const e of [a, b]) {
      if (!this.bridges.has(e.bridge))
        throw new OvsError(`ovs-vsctl: no bridge named ${e.bridge}`, "bridge-missing", [], "", 1);
      const cur = this.ports.get(e.name);
      if (cur && cur.bridge !== e.bridge) {
        throw new OvsError(
          `ovs-vsctl: cannot create a port named ${e.name} because a port named ${e.name} already exists on bridge ${cur.bridge}`,
          "port-exists",
          [],
          "",
          1,
        );
      }
    }
    for (const [e, peer] of [
      [a, b.name],
      [b, a.name],
    ] as const) {
      const cur = this.ports.get(e.name);
      this.ports.set(e.name, {
        bridge: e.bridge,
        name: e.name,
        ...(e.tag !== undefined ? { tag: e.tag } : cur?.tag !== undefined ? { tag: cur.tag } : {}),
        peer,
        externalIds: { ...(cur?.externalIds ?? {}), ...e.externalIds },
      });
    }
  }

  deletePorts(names: readonly string[]): Promise<void> {
    this.check("deletePorts");
    for (const n of names) this.ports.delete(n);
    return Promise.resolve();
  }
}
