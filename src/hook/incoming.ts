/**
 * `migrate begin` and `restore begin`: the domain XML libvirt is about to run on this host, adopted
 * for this host's attach mode exactly as `virt-aa-hook adopt` would adopt it (attach/index.ts
 * adoptXml: one element replaced, inserted or removed, every other byte as it came), and handed back
 * on stdout only when that changed something.
 *
 * What libvirt does with it (read from libvirt's source):
 * - migrate: qemu_migration.c qemuMigrationDstPrepareFresh (called by qemuMigrationDstPrepareAny on
 *   the DESTINATION, for live and offline migrations) formats the incoming definition with
 *   VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE and runs `migrate begin` with it on stdin.
 *   A failed hook (exit != 0) cancels the incoming migration; empty stdout keeps the XML; anything
 *   else is parsed (virDomainDefParseString, VIR_DOMAIN_DEF_PARSE_INACTIVE) and must pass
 *   qemuDomainDefCheckABIStability against the incoming definition, else the migration fails. The
 *   domain is then marked as altered by a hook (priv->hookRun, taint "hook-script").
 * - restore: qemu_driver.c qemuDomainRestoreInternal (`virsh restore`, qemuDomainRestoreFlags
 *   before libvirt 8.4; the XML is `--xml FILE`'s if given, else the save image's) and
 *   qemuDomainObjRestore (start from a managed save) run `restore begin` with it; non-empty stdout
 *   goes through qemu_saveimage.c qemuSaveImageUpdateDef (qemuDomainSaveImageUpdateDef in older
 *   libvirt): parsed, then the same ABI check against the image's definition. A failed hook aborts
 *   the restore (and the start).
 * - The ABI check (conf/domain_conf.c virDomainDefCheckABIStabilityFlags) compares virt type,
 *   UUID, name, memory, vCPUs, OS type/arch/machine, features, timers, CPU, sysinfo and the guest
 *   devices; neither `<emulator>` nor `<seclabel>` is part of it (libvirt 9.0's messages, `Target
 *   ... does not match source`, name none of them), so both edits pass it.
 * - Only the definition about to run is filtered. A live `--persistent` migration defines the
 *   domain on the destination from the source's persistent definition, which travels in the
 *   migration cookie (qemuMigrationDstPersist: `vm->newDef = qemuMigrationCookieGetPersistent(mig)`)
 *   and never passes this hook: run `virt-aa-hook adopt NAME` on the destination for it
 *   (docs/hook.md, "Migration"). An `--offline --persistent` migration defines what this hook
 *   printed (libvirt 9.0: test/fleet test 5).
 * - The XML libvirt parses is post-parsed with the security driver's verify
 *   (qemuDomainDefPostParse -> qemuSecurityVerify); a libvirt whose AppArmor driver refuses a
 *   static label whose profile is not loaded refuses the seclabel edit here: the migration fails,
 *   the guest stays on the source (fail closed). libvirt 9.0 never gets that far: its stacked
 *   manager ("stack") has no label of its own, and virSecurityManagerVerify returns early. Loading the profile now instead would leave it
 *   loaded, unreleased, whenever libvirt cancels the migration after this hook.
 *
 * Policy stays where it is: a domain adopt cannot adopt (AttachError) is passed on unchanged with a
 * warning, and the `prepare` that follows applies `require_attach` (refuses it, or lets it run as
 * the admin allowed). What goes to the log is which element changed, never the XML.
 */
import fs from "node:fs";
import { AttachError, adoptXml, attachFacts, type AttachMode } from "../attach/index.js";
import type { HookContext, Outcome } from "./context.js";

type Facts = ReturnType<typeof attachFacts>;

/**
 * The call for `attach` (the config's; run.ts answers attach = "none" itself: nothing of ours
 * attaches QEMU there, and adoptXml's "none" would undo an adoption made on another host, which
 * is not this host's to decide).
 */
export function adoptIncoming(ctx: HookContext, attach: Exclude<AttachMode, "none">, xml: Buffer, truncated: boolean): Outcome {
  const unchanged = (why: string): Outcome => ({ summary: `${why}: XML passed on unchanged`, warnings: ctx.warnings });

  const refused = (reason: string): Outcome => {
    ctx.warnings.push({ path: "-", reason: `cannot adopt it for attach = "${attach}": ${reason}; passed on unchanged (prepare applies require_attach)`, stderr: true });
    return unchanged(`not adopted for attach = ${attach}`);
  };
  // Whatever is printed replaces the XML: never print an edit of something we did not read whole.
  if (truncated) return refused("the XML is larger than 16 MiB");
  const text = xml.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(xml)) return refused("the XML is not valid UTF-8");

  let adopted: string;
  try {
    adopted = adoptXml(text, attach, { wrapperDir: ctx.layout.wrapperDir, emulatorDir: ctx.layout.emulatorDir });
  } catch (err) {
    if (!(err instanceof AttachError)) throw err;
    return refused(withoutName(err.message, ctx.guest));
  }
  if (adopted === text) return unchanged(`already adopted for attach = ${attach}`);

  const before = attachFacts(text);
  const after = attachFacts(adopted);
  if (attach === "wrapper") {
    // As `adopt` does (attach/adopt-run.ts): a wrapper link that is not there would make QEMU's
    // exec fail on this host with a message that names neither the link nor its fix.
    const emulator = after.emulator ?? "";
    if (!fs.existsSync(ctx.layout.host(emulator))) {
      return refused(`${emulator}: wrapper link missing: run install.sh again after installing this QEMU`);
    }
  }
  return { summary: `adopted for attach = ${attach}: ${changes(before, after)}`, warnings: ctx.warnings, replacementXml: adopted };
}

/** AttachError messages start with the domain's name; the warning line names the guest already. */
function withoutName(message: string, guest: string): string {
  return message.startsWith(`${guest}: `) ? message.slice(guest.length + 2) : message;
}

/** Which elements the adoption changed, for the log: `<emulator> A -> B`, `added <seclabel ...>`. */
function changes(before: Facts, after: Facts): string {
  const out: string[] = [];
  if (before.emulator !== after.emulator) out.push(`<emulator> ${before.emulator ?? "(none)"} -> ${after.emulator ?? "(none)"}`);
  const was = before.seclabels.map(seclabelText);
  const now = after.seclabels.map(seclabelText);
  for (const s of without(was, now)) out.push(`removed ${s}`);
  for (const s of without(now, was)) out.push(`added ${s}`);
  return out.join("; ");
}

/** `a` minus `b`, counting repeats (a label given twice and kept once was removed once). */
function without(a: readonly string[], b: readonly string[]): string[] {
  const left = [...b];
  return a.filter((s) => {
    const i = left.indexOf(s);
    if (i === -1) return true;
    left.splice(i, 1);
    return false;
  });
}

function seclabelText(s: Facts["seclabels"][number]): string {
  const attr = (k: string, v: string | undefined) => (v === undefined ? "" : ` ${k}='${v.slice(0, 64)}'`);
  const label = s.label === undefined ? "" : ` label ${s.label.slice(0, 128)}`;
  return `<seclabel${attr("type", s.type)}${attr("model", s.model)}>${label}`;
}
