import type { CommandModule } from "yargs";
import { connectOption, GRANT_WORKFLOW, runAdmin } from "./grant.js";

interface RevokeArgs {
  root: string;
  name: string;
  path: string;
  connect: string;
}

/** `virt-aa-hook revoke NAME PATH` */
export function revokeCommand(): CommandModule<{ root: string }, RevokeArgs> {
  return {
    command: "revoke <name> <path>",
    describe: "Take back an admin grant of PATH from a running guest and reload its profile",
    builder: (y) =>
      y
        .positional("name", { type: "string", demandOption: true, describe: "domain name (a running guest)" })
        .positional("path", { type: "string", demandOption: true, describe: "the path given with virt-aa-hook grant" })
        .option("connect", connectOption)
        .example("$0 revoke web1 /var/lib/libvirt/images/base.qcow2", "after a block commit ended: the base is read-only again")
        .epilogue(GRANT_WORKFLOW),
    handler: (args) => runAdmin(args.root, args.connect, args.name, async (ctx) => (await import("../../grants/admin.js")).revokePath(ctx, args.name, args.path)),
  };
}
