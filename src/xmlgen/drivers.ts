/** Per-driver differences, all in one table. */
import { ConfigError } from "../common/errors.js";
import { HYPERVISOR_NAMES, type Hypervisor, type HypervisorName } from "./model.js";

/** hypervisorFromName parses `kvm`, `qemu`, `lxc`, `xen-pv`, `xen-hvm` or `test`; ConfigError otherwise. */
export function hypervisorFromName(name: string, path = "hypervisor"): Hypervisor {
  switch (name) {
    case "kvm":
    case "qemu":
    case "lxc":
    case "test":
      return { type: name };
    case "xen-pv":
      return { type: "xen", mode: "pv" };
    case "xen-hvm":
      return { type: "xen", mode: "hvm" };
  }
  throw new ConfigError(`unknown hypervisor (want one of ${HYPERVISOR_NAMES.join(", ")})`, path, name);
}

/** hypervisorName is the inverse of hypervisorFromName. */
export function hypervisorName(h: Hypervisor): HypervisorName {
  return h.type === "xen" ? `xen-${h.mode}` : h.type;
}
