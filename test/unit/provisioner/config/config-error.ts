/** configError parses inline YAML that must be refused and returns the ConfigError (anything else fails). */
import { ConfigError } from "../../../../src/common/errors.js";
import { parseConfig } from "../../../../src/provisioner/config/index.js";

export function configError(yaml: string): ConfigError {
  try {
    parseConfig(yaml);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}
