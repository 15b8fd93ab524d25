import { ConfigError, loadLayout, type Config } from "../config.js";
import { ExitError, formatLine } from "../errors.js";
import type { Layout } from "../layout.js";

/**
 * The config for an admin command and the layout it makes (our locations where the config puts
 * them). A config that cannot be used ends the command: ExitError(1) with the config's one line.
 */
export function loadForCommand(root: string): { config: Config; layout: Layout } {
  try {
    return loadLayout(root);
  } catch (err) {
    if (err instanceof ConfigError) throw new ExitError(1, formatLine("error", err.message));
    throw err;
  }
}
