import type { CommandModule } from "yargs";
import { ExitError } from "../../errors.js";
import { runNetworkHookCommand } from "../network-fast.js";

interface NetworkHookArgs {
  root: string;
  network: string;
  operation: string;
  suboperation: string;
  extra: string;
}

/**
 * `virt-aa-hook [--root DIR] network-hook NETWORK OP SUBOP EXTRA`: libvirt's network hook
 * (hooks/network). hooks/network reaches main.ts's fast path (no yargs); this entry gives it its
 * `--help` and lets `--root` come first, as `hook` does.
 */
export function networkHookCommand(): CommandModule<{ root: string }, NetworkHookArgs> {
  return {
    command: "network-hook <network> <operation> <suboperation> <extra>",
    describe:
      "Run as libvirt's network hook (/etc/libvirt/hooks/network): the hook data XML on stdin; at port-created and port-deleted, grant and drop /dev/vhost-net for a guest virt-aa-hook manages",
    builder: (y) =>
      y
        .positional("network", { type: "string", demandOption: true, describe: "network name" })
        .positional("operation", { type: "string", demandOption: true, describe: "port-created, port-deleted (others: nothing to do)" })
        .positional("suboperation", { type: "string", demandOption: true, describe: "begin or end" })
        .positional("extra", { type: "string", demandOption: true, describe: 'extra argument ("-" when libvirt has none)' }),
    handler: async (args) => {
      const code = await runNetworkHookCommand(["--root", args.root, "--", String(args.network), String(args.operation), String(args.suboperation), String(args.extra)]);
      if (code !== 0) throw new ExitError(code);
    },
  };
}
