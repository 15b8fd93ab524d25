import type { Config } from "../config.js";
import type { Warning } from "../errors.js";
import type { Layout } from "../layout.js";
import { HostFs } from "../hostfs.js";
import { loadQemuConf, type QemuConf } from "../host/qemu-conf.js";

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
  /** libvirt's qemu.conf, read on first use (qemuConfOf) and then kept for the rest of the call. */
  qemu?: QemuConf;
}

/**
 * The call's qemu.conf: read once, when the first profile is built (a call that builds none never
 * reads it). A broken qemu.conf is a HostError naming file, line and key.
 */
export function qemuConfOf(ctx: HookContext): QemuConf {
  return (ctx.qemu ??= loadQemuConf(new HostFs(ctx.layout)));
}

/** What an operation ends with (a failure throws instead): the log's summary and its warnings (ctx.warnings). */
export interface Outcome {
  summary: string;
  warnings: Warning[];
  /**
   * `migrate`/`restore` only: the XML libvirt is to use instead of the one it gave (run.ts prints
   * it on stdout, the only output the hook ever writes there); absent: keep libvirt's.
   */
  replacementXml?: string;
}
