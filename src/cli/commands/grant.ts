import type { CommandModule } from "yargs";
import { ExitError, formatLine } from "../../errors.js";
import type { AdminContext, AdminOutcome } from "../../grants/admin.js";
import { loadForCommand } from "../config.js";

interface GrantArgs {
  root: string;
  name: string;
  path: string;
  "read-only": boolean;
  connect: string;
}

/** The workflow the grant/revoke/sync help texts show. */
export const GRANT_WORKFLOW = [
  'For guests whose attach mode makes libvirt call nothing when a running guest needs a new file (attach = "wrapper" or "seclabel"): grant the path before the operation, sync or revoke after it. Each command reads the live XML (virsh dumpxml), judges every grant by the same policy as the XML (restricted locations, other guests\' disks, device allow-lists) and replaces the profile atomically under the guest\'s lock. A guest\'s grants end when it stops.',
  "",
  "Hot-plug a disk, then take it away again:",
  "  virt-aa-hook grant web1 /var/lib/libvirt/images/data.img",
  "  virsh attach-disk web1 /var/lib/libvirt/images/data.img vdb --live",
  "  virt-aa-hook sync web1     (the live XML names the disk: grant dropped)",
  "  virsh detach-disk web1 vdb --live",
  "  virt-aa-hook sync web1     (the profile shrinks to the live XML)",
  "",
  "Block commit into a read-only backing layer:",
  "  virt-aa-hook grant web1 /var/lib/libvirt/images/base.qcow2",
  "  virsh blockcommit web1 vda --active --pivot",
  "  virt-aa-hook revoke web1 /var/lib/libvirt/images/base.qcow2",
  "",
  "Grant every file QEMU will open: each layer of a new image's backing chain, a new cdrom medium (--read-only), a snapshot overlay or blockcopy target before the job starts.",
].join("\n");

/**
 * What the three commands share: the context, the one summary line, the one error line. The
 * commands' code (the sync, the parser, execa) is loaded only when one of them runs, not by every
 * other command's start.
 */
export async function runAdmin(root: string, connect: string, name: string, fn: (ctx: AdminContext) => Promise<AdminOutcome>): Promise<void> {
  const { AdminFailure } = await import("../../grants/admin.js");
  const { liveXmlFrom } = await import("../../grants/virsh.js");
  const { layout, config } = loadForCommand(root);
  // With --root DIR nothing of the real host is used: virsh is DIR's (a stand-in in the tests).
  const virsh = layout.isRealRoot ? layout.virsh : layout.host(layout.virsh);
  let outcome: AdminOutcome;
  try {
    outcome = await fn({ layout, config, liveXml: liveXmlFrom(virsh, connect) });
  } catch (err) {
    if (err instanceof AdminFailure) throw new ExitError(err.code, formatLine("error", err.what, err.reason));
    throw err;
  }
  // "debug" notes (how a profile was loaded) are for the hook's log, not the admin's terminal.
  for (const w of outcome.warnings) if (w.level !== "debug") process.stderr.write(`${formatLine("warning", name, w.path, w.reason)}\n`);
  process.stdout.write(`${outcome.summary}\n`);
}

/** libvirt's system instance, where QEMU guests run as root-managed domains. */
export const SYSTEM_URI = "qemu:///system";

export const connectOption = { alias: "c", type: "string", default: SYSTEM_URI, describe: "libvirt URI for virsh dumpxml" } as const;

/** `virt-aa-hook grant NAME PATH [--read-only]` */
export function grantCommand(): CommandModule<{ root: string }, GrantArgs> {
  return {
    command: "grant <name> <path>",
    describe: "Let a running guest's QEMU open PATH (read-write, or --read-only) until revoked or the guest stops",
    builder: (y) =>
      y
        .positional("name", { type: "string", demandOption: true, describe: "domain name (a running guest)" })
        .positional("path", { type: "string", demandOption: true, describe: "absolute host path QEMU will open" })
        .option("read-only", { alias: "r", type: "boolean", default: false, describe: "grant read access only (rk instead of rwk)" })
        .option("connect", connectOption)
        .example("$0 grant web1 /var/lib/libvirt/images/data.qcow2", "before virsh attach-disk --live")
        .example("$0 grant web1 /srv/iso/debian.iso --read-only", "before virsh change-media")
        .epilogue(GRANT_WORKFLOW),
    handler: (args) =>
      runAdmin(args.root, args.connect, args.name, async (ctx) => (await import("../../grants/admin.js")).grantPath(ctx, args.name, args.path, { write: !args["read-only"] })),
  };
}
