import type { CommandModule } from "yargs";
import { ExitError } from "../../errors.js";
import { runHookCommand } from "../hook-fast.js";

interface HookArgs {
  root: string;
  name: string;
  operation: string;
  suboperation: string;
  extra: string;
}

/**
 * `virt-aa-hook [--root DIR] hook NAME OP SUBOP EXTRA`: the same code as the fast path main.ts
 * takes when argv starts with "hook" (that path never loads yargs); this entry only exists so
 * `--root` may come first and `--help` lists and explains the command (main.ts sends a `--help`
 * before the hook's `--` here).
 */
export function hookCommand(): CommandModule<{ root: string }, HookArgs> {
  return {
    command: "hook <name> <operation> <suboperation> <extra>",
    describe:
      "Run as libvirt's qemu hook (/etc/libvirt/hooks/qemu runs this): the domain XML on stdin; prepare and start write and load the guest's profile, started checks that QEMU runs in it, release unloads and removes it, reconnect reloads it; other operations do nothing. Never calls libvirt; prints nothing on stdout; one line per call in /var/log/libvirt/virt-aa-hook.log",
    builder: (y) =>
      y
        .positional("name", { type: "string", demandOption: true, describe: "domain name" })
        .positional("operation", { type: "string", demandOption: true, describe: "prepare, start, started, stopped, release, reconnect, migrate, restore, ..." })
        .positional("suboperation", { type: "string", demandOption: true, describe: "begin or end" })
        .positional("extra", { type: "string", demandOption: true, describe: 'extra argument ("-" when libvirt has none; release: the reason)' }),
    handler: async (args) => {
      // The hook prints its own lines (as on the fast path); only its code is left to give.
      const code = await runHookCommand(["--root", args.root, "--", String(args.name), String(args.operation), String(args.suboperation), String(args.extra)]);
      if (code !== 0) throw new ExitError(code);
    },
  };
}
