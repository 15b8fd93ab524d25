import type { Config } from "../config.js";
import type { Warning } from "../errors.js";
import type { Layout } from "../layout.js";

/** What every operation gets: where the host is, the config in effect and the guest. */
export interface HookContext {
  layout: Layout;
  config: Config;
  /** Domain name as libvirt passed it (argv[1]). */
  guest: string;
  op: string;
  /**
   * What the operation tolerated or worked around, added as it goes, so that what was noted
   * before a failure is reported too. Only the hook's entry point (run.ts) reports them.
   */
  warnings: Warning[];
}

/** What an operation ends with (a failure throws instead): the log's summary and its warnings (ctx.warnings). */
export interface Outcome {
  summary: string;
  warnings: Warning[];
}
