import type { Chardev } from "../domain/model.js";
import { absolute } from "./absolute.js";
import { rule, type RuleFamily } from "./context.js";
import type { Rule } from "./ir.js";

/**
 * Character-device backends (serial, parallel, console, channel, and those embedded in other
 * devices), as collected by the parser in `devices.chardevs`.
 *
 * - file, dev, unix: the path, `rw`. A unix socket in server mode is created by QEMU; AppArmor
 *   mediates that bind as a `w` on the socket path itself, so the directory needs nothing.
 * - pipe: QEMU opens `<path>.in` and `<path>.out` first and, when either fails, falls back to
 *   `<path>` itself for both directions (qemu chardev/char-pipe.c), so all three are `rw`.
 * - pty, vc, null, stdio, tcp, udp, spicevmc, spiceport, qemu-vdagent, nmdm: no host path QEMU
 *   opens by name (ptys come from the shared libvirt-qemu abstraction).
 * - `<log file=...>`: QEMU writes it (append or truncate); `rw`, the same as a file backend.
 *
 * A path-typed chardev without a path is left alone: libvirt fills in auto-named unix channels
 * under the per-guest channel directory, which the runtime family already grants.
 */
export const chardevRules: RuleFamily = (ctx) => ctx.domain.devices.chardevs.flatMap(rulesForChardev);

const PATH_TYPES = new Set(["file", "dev", "unix"]);

function rulesForChardev(chr: Chardev): Rule[] {
  const out: Rule[] = [];
  if (chr.path !== undefined) {
    if (PATH_TYPES.has(chr.type)) {
      out.push(rule(absolute(chr.path), "rw", chr.source));
    } else if (chr.type === "pipe") {
      const path = absolute(chr.path);
      out.push(rule(`${path}.in`, "rw", chr.source), rule(`${path}.out`, "rw", chr.source), rule(path, "rw", chr.source));
    }
  }
  if (chr.logFile !== undefined) out.push(rule(absolute(chr.logFile), "rw", `${chr.source} log`));
  return out;
}
