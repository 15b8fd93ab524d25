import type { CommandModule } from "yargs";
import { connectOption, GRANT_WORKFLOW, runAdmin } from "./grant.js";

interface SyncArgs {
  root: string;
  name: string;
  "revoke-all": boolean;
  connect: string;
}

/** `virt-aa-hook sync NAME [--revoke-all]` */
export function syncCommand(): CommandModule<{ root: string }, SyncArgs> {
  return {
    command: "sync <name>",
    describe: "Rebuild a running guest's profile from its live XML (after attach/detach, media change, snapshot, block job)",
    builder: (y) =>
      y
        .positional("name", { type: "string", demandOption: true, describe: "domain name (a running guest)" })
        .option("revoke-all", {
          type: "boolean",
          default: false,
          describe: "also drop the admin grants the live XML does not name (only when no block job runs)",
        })
        .option("connect", connectOption)
        .example("$0 sync web1", "after virsh detach-disk: the disk's rules are gone")
        .epilogue(
          `Admin grants the live XML now names itself (same path, same or wider access) are dropped: the XML keeps them. Others stay until revoked (a blockcopy target or a commit base is not named while the job runs); --revoke-all drops them too. Network-port grants stay.

${GRANT_WORKFLOW}`,
        ),
    handler: (args) =>
      runAdmin(args.root, args.connect, args.name, async (ctx) => (await import("../../grants/admin.js")).syncGuest(ctx, args.name, { revokeAll: args["revoke-all"] })),
  };
}
