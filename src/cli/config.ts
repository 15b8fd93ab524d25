import { ConfigError, loadConfig, type Config } from "../config.js";
import type { Layout } from "../layout.js";

/** The config for an admin command, or undefined after printing the one-line error and setting exit 1. */
export function loadConfigForCommand(layout: Layout, setExit: (code: number) => void): Config | undefined {
  try {
    return loadConfig(layout);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`virt-aa-hook: error: ${err.message}\n`);
    setExit(1);
    return undefined;
  }
}
