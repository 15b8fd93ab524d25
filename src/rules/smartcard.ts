import path from "node:path";
import type { OriginRule } from "../ir.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";

const rule = ruleOf("smartcard");

/** libvirt's VIR_DOMAIN_SMARTCARD_DEFAULT_DATABASE: `mode='host'` always, host-certificates without `<database>`. */
export const NSS_DEFAULT_DATABASE = "/etc/pki/nssdb";

/**
 * `<smartcard mode='host'>` and `mode='host-certificates'`: QEMU's ccid-card-emulated (libcacard)
 * opens the NSS database, the directory and the files directly in it (cert9.db, key4.db,
 * pkcs11.txt; sqlite takes read locks). libvirt's virt-aa-helper.c get_files grants
 * `"<db>/{,*}" rk` (libvirt 9.0 already); we grant the same as two rules, the directory `r` and its
 * entries `rk`, never deeper and never writable.
 *
 * Policy (docs/threat-model.md, "Smartcard databases"): the XML is untrusted, so a `<database>`
 * is judged like any path an XML names: `/etc`, `/root`, users' dotfiles and every other
 * restricted place are refused (a `<database>/etc/ssl/private</database>` is refused). The one
 * exception is libvirt's default `/etc/pki/nssdb`: host configuration the admin set up for
 * smartcard emulation (libvirt's own profile grants it to every such guest), granted read-only.
 * Passthrough smartcards are chardevs (rules/chardevs.ts).
 */
export const smartcardRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.smartcards.flatMap((card, i): OriginRule[] => {
    const db = card.mode === "host-certificates" && card.database !== undefined ? directory(absolute(card.database)) : NSS_DEFAULT_DATABASE;
    const source = `smartcard ${i} database`;
    return [rule(db, "r", source, "/"), rule(db, "rk", source, "/*")];
  });

/** `/etc/pki/nssdb/` → `/etc/pki/nssdb` (the suffixes add the slash), `.` and `..` resolved. */
function directory(p: string): string {
  const normal = path.posix.normalize(p);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}
