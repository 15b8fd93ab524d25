import type { CommandModule } from "yargs";
import { ExitError } from "../../errors.js";
import { runHelperCommand } from "../../helper/command.js";

/**
 * `virt-aa-hook [--root DIR] virt-aa-helper -- ARGS...`: libvirt's virt-aa-helper, for attach =
 * "helper" (docs/helper.md). hooks/virt-aa-helper reaches main.ts's fast path (no yargs); this entry
 * gives it its `--help` and lets `--root` come first.
 */
export function helperCommand(): CommandModule<{ root: string }, { root: string; args?: string[] }> {
  return {
    command: "virt-aa-helper [args..]",
    describe:
      "Run as libvirt's virt-aa-helper (attach = \"helper\": /usr/lib/libvirt/virt-aa-helper is diverted to hooks/virt-aa-helper): create, load, replace or remove a guest's profile with virt-aa-hook's generator and policy",
    builder: (y) =>
      y.positional("args", { type: "string", array: true, describe: "libvirt's own virt-aa-helper arguments, after --; -- -h prints them" }).parserConfiguration({ "populate--": true }),
    handler: async (args) => {
      const helperArgs = [...(args.args ?? []), ...(((args as Record<string, unknown>)["--"] as string[] | undefined) ?? [])].map(String);
      const code = await runHelperCommand(["--root", args.root, "--", ...helperArgs]);
      if (code !== 0) throw new ExitError(code);
    },
  };
}
