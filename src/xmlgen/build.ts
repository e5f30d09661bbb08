/** buildDomainXml: VmDescription -> libvirt domain XML. */
import type { VmDescription } from "./model.js";
import { validateVmDescription } from "./validate.js";

/** buildDomainXml validates `vm` and renders its domain XML (deterministic: same input, same bytes). */
export function buildDomainXml(vm: VmDescription): string {
  validateVmDescription(vm);
  return ""; // stub: implemented next
}
