/** validateVmDescription: checks every name, path, MAC and uuid before any XML is built. */
import type { VmDescription } from "./model.js";

/** validateVmDescription returns `vm` (uuid filled in) or throws ConfigError naming the field path and value. */
export function validateVmDescription(vm: VmDescription): VmDescription {
  return vm; // stub: implemented next
}
