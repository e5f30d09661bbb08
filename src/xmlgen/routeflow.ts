/**
 * RouteFlow's NIC conventions, as RouteFlow's own rftest setups configure their LXC routing VMs (rfvmA):
 * eth0 is management with MAC = vm_id; data NIC ethN (N >= 1) has a MAC derived from the vm_id and the
 * host-side device `<vmname>.<N>`, a port of the RouteFlow virtual switch `dp0`.
 */
import { createHash } from "node:crypto";
import { ConfigError } from "../common/errors.js";
import type { Interface } from "./model.js";

/** MAC_RE matches a colon-separated 48-bit MAC (either case). */
export const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** ROUTEFLOW_SWITCH_BRIDGE is the OVS bridge of RouteFlow's virtual switch in rftest (dpid 7266767372667673). */
export const ROUTEFLOW_SWITCH_BRIDGE = "dp0";

/** IFNAMSIZ_MAX is the longest Linux network device name (IFNAMSIZ 16 minus the NUL). */
export const IFNAMSIZ_MAX = 15;

/** MAX_DATA_PORTS bounds the data NICs of one VM (a sanity limit; PCI slots end well before). */
export const MAX_DATA_PORTS = 256;

function macBytes(mac: string, path: string): number[] {
  if (!MAC_RE.test(mac)) throw new ConfigError(`not a MAC address (want aa:bb:cc:dd:ee:ff)`, path, mac);
  return mac.split(":").map((b) => parseInt(b, 16));
}

function render(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * routeflowDataMac gives the MAC of data NIC eth`n` of the VM whose vm_id (eth0 MAC) is `vmId`.
 *
 * Rule (exactly RouteFlow's for every rftest VM, generalised):
 * 1. RouteFlow pattern: bytes 1..5 of the vm_id are one value `b` whose low nibble is 0 and 1 <= n <= 15:
 *    keep byte 0 and put `b + n` in bytes 1..5 (`02:a0:a0:a0:a0:a0`, 3 -> `02:a3:a3:a3:a3:a3`;
 *    rftest1's `12:a0:..` -> `12:a1:..`). Staying inside the low nibble means two pattern VMs with different
 *    `b` (rfvmA `a0`, rfvmB `b0`) can never collide.
 * 2. Otherwise (any other vm_id, or n > 15): a locally administered unicast MAC from
 *    SHA-256(`rfboot-data-mac/<vm_id lower-case>/<n>`): byte 0 = (h0 & 0xfc) | 0x02, bytes 1..5 = h1..h5.
 *    Deterministic, never multicast, collisions only by hash accident (checked per VM by validation).
 * The vm_id must be a unicast MAC; `n` an integer 1..MAX_DATA_PORTS.
 */
export function routeflowDataMac(vmId: string, n: number, path = "vm_id"): string {
  const b = macBytes(vmId, path);
  if ((b[0]! & 1) !== 0)
    throw new ConfigError("vm_id must be a unicast MAC (bit 0 of byte 0 clear)", path, vmId);
  if (!Number.isInteger(n) || n < 1 || n > MAX_DATA_PORTS) {
    throw new ConfigError(`data port number must be an integer 1..${MAX_DATA_PORTS}`, `${path}[port]`, n);
  }
  const v = b[1]!;
  const pattern = b.slice(1).every((x) => x === v) && (v & 0x0f) === 0;
  if (pattern && n <= 15) return render([b[0]!, v + n, v + n, v + n, v + n, v + n]);
  const h = createHash("sha256").update(`rfboot-data-mac/${vmId.toLowerCase()}/${n}`).digest();
  return render([(h[0]! & 0xfc) | 0x02, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!]);
}

/** routeflowDataMacs lists the MACs of data NICs eth1..eth`count` (see routeflowDataMac). */
export function routeflowDataMacs(vmId: string, count: number, path = "vm_id"): string[] {
  const out: string[] = [];
  for (let n = 1; n <= count; n++) out.push(routeflowDataMac(vmId, n, path));
  return out;
}

/**
 * routeflowDeviceName is the host-side device of data NIC eth`n`: `<vmName>.<n>` (RouteFlow's veth pair
 * name, `rfvmA.1`). Throws ConfigError when it would exceed IFNAMSIZ_MAX characters: choose a shorter VM
 * name (Linux cannot create the device and libvirt fails at start, not at define).
 */
export function routeflowDeviceName(vmName: string, n: number, path = "name"): string {
  const dev = `${vmName}.${n}`;
  if (dev.length > IFNAMSIZ_MAX) {
    throw new ConfigError(
      `host device name ${JSON.stringify(dev)} is longer than ${IFNAMSIZ_MAX} characters (Linux IFNAMSIZ); use a VM name of at most ${IFNAMSIZ_MAX - 1 - String(n).length} characters`,
      path,
      vmName,
    );
  }
  return dev;
}

/** ManagementAttachment says where eth0 goes: a host bridge (RouteFlow's `lxcbr0`) or a libvirt network. */
export type ManagementAttachment =
  | { readonly type: "bridge"; readonly bridge: string; readonly openvswitch?: boolean }
  | { readonly type: "network"; readonly network: string };

/** RouteflowNicOptions are the inputs of routeflowInterfaces. */
export interface RouteflowNicOptions {
  /** The VM (domain) name; data NIC host devices are `<vmName>.<N>`. */
  readonly vmName: string;
  /** RouteFlow vm_id as a MAC: eth0's MAC. */
  readonly vmId: string;
  /** Number of data NICs (eth1..N); 0 allowed. */
  readonly dataPorts: number;
  readonly management: ManagementAttachment;
  /** The virtual switch bridge data NICs join (default ROUTEFLOW_SWITCH_BRIDGE). */
  readonly switchBridge?: string;
  /** Whether the switch bridge is Open vSwitch (`<virtualport type='openvswitch'/>`, default true). */
  readonly openvswitch?: boolean;
}

/**
 * routeflowInterfaces builds a VM's NIC list the way RouteFlow lays it out: eth0 management (MAC = vm_id),
 * then eth1..N on the virtual switch with RouteFlow's MACs and `<vmName>.<N>` host devices.
 */
export function routeflowInterfaces(o: RouteflowNicOptions): Interface[] {
  const mgmt: Interface =
    o.management.type === "bridge"
      ? {
          type: "bridge",
          bridge: o.management.bridge,
          mac: o.vmId.toLowerCase(),
          ...(o.management.openvswitch ? { virtualport: { type: "openvswitch" as const } } : {}),
        }
      : { type: "network", network: o.management.network, mac: o.vmId.toLowerCase() };
  const out: Interface[] = [mgmt];
  const macs = routeflowDataMacs(o.vmId, o.dataPorts);
  const ovs = o.openvswitch ?? true;
  macs.forEach((mac, i) => {
    out.push({
      type: "bridge",
      bridge: o.switchBridge ?? ROUTEFLOW_SWITCH_BRIDGE,
      mac,
      ...(ovs ? { virtualport: { type: "openvswitch" as const } } : {}),
      target: routeflowDeviceName(o.vmName, i + 1),
    });
  });
  return out;
}
