import type { Chardev } from "../domain/model.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleConstructor, type RuleFamily } from "./context.js";
import type { OriginRule } from "../ir.js";

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

/**
 * The origin each path-typed backend is judged as: a `file` or `pipe` backend and every log are
 * plain files, a `dev` backend a host serial or parallel line, a `unix` backend a socket. The
 * policy (policy/provenance.ts) decides which device nodes each may name: only `dev` may name a
 * serial line, none may name a host terminal.
 */
const fileRule = ruleOf("chardev-file");
const BY_TYPE: Record<string, RuleConstructor> = {
  file: fileRule,
  dev: ruleOf("chardev-dev"),
  unix: ruleOf("chardev-socket"),
};

function rulesForChardev(chr: Chardev): OriginRule[] {
  const out: OriginRule[] = [];
  if (chr.path !== undefined) {
    const rule = BY_TYPE[chr.type];
    if (rule !== undefined) {
      out.push(rule(absolute(chr.path, chr.source), "rw", chr.source));
    } else if (chr.type === "pipe") {
      const path = absolute(chr.path, chr.source);
      out.push(fileRule(`${path}.in`, "rw", chr.source), fileRule(`${path}.out`, "rw", chr.source), fileRule(path, "rw", chr.source));
    }
  }
  if (chr.logFile !== undefined) out.push(fileRule(absolute(chr.logFile, `${chr.source} log`), "rw", `${chr.source} log`));
  return out;
}
