import type { CommandModule } from "yargs";
import { ExitError } from "../../errors.js";
import { runHookCommand } from "../hook-fast.js";

/** A libvirt hook's four words, as yargs positionals: [name, what it is]. */
type HookWords = readonly [readonly [string, string], readonly [string, string], readonly [string, string], readonly [string, string]];

/**
 * A libvirt hook (`hook`, `network-hook`) as a yargs command: `[--root DIR] COMMAND W1 W2 W3 W4`.
 * libvirt reaches the same code through main.ts's fast path (no yargs); this entry only exists so
 * `--root` may come first and `--help` lists and explains the command (main.ts sends a `--help`
 * before the hook's `--` here). `run` is the fast path's function; it prints its own lines.
 */
export function libvirtHookCommand(
  name: string,
  describe: string,
  words: HookWords,
  run: (args: string[]) => Promise<number>,
): CommandModule<{ root: string }, { root: string } & Record<string, unknown>> {
  return {
    command: `${name} ${words.map(([w]) => `<${w}>`).join(" ")}`,
    describe,
    builder: (y) => words.reduce((b, [w, what]) => b.positional(w, { type: "string", demandOption: true, describe: what }), y) as never,
    handler: async (args) => {
      const code = await run(["--root", args.root, "--", ...words.map(([w]) => String(args[w]))]);
      if (code !== 0) throw new ExitError(code);
    },
  };
}

/** `virt-aa-hook [--root DIR] hook NAME OP SUBOP EXTRA` */
export function hookCommand(): CommandModule<{ root: string }, { root: string } & Record<string, unknown>> {
  return libvirtHookCommand(
    "hook",
    "Run as libvirt's qemu hook (/etc/libvirt/hooks/qemu runs this): the domain XML on stdin; prepare and start write and load the guest's profile, started checks that QEMU runs in it, release unloads and removes it, reconnect reloads it; other operations do nothing. Never calls libvirt; prints nothing on stdout; one line per call in /var/log/libvirt/virt-aa-hook.log",
    [
      ["name", "domain name"],
      ["operation", "prepare, start, started, stopped, release, reconnect, migrate, restore, ..."],
      ["suboperation", "begin or end"],
      ["extra", 'extra argument ("-" when libvirt has none; release: the reason)'],
    ],
    runHookCommand,
  );
}
