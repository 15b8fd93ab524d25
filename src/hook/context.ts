import type { Config } from "../config.js";
import type { Layout } from "../layout.js";
import type { HookLog } from "./log.js";

/** What every operation gets: where the host is, the config in effect, the guest and the log. */
export interface HookContext {
  layout: Layout;
  config: Config;
  /** Domain name as libvirt passed it (argv[1]). */
  guest: string;
  op: string;
  log: HookLog;
}
