import type { CommandModule } from "yargs";
import { ExitError } from "../../errors.js";
import { loadForCommand } from "../config.js";

/** `virt-aa-hook load-adopted`: load the profiles of domains defined with our static label; release the ones whose domain is gone. */
export function loadAdoptedCommand(): CommandModule<{ root: string }, { root: string; "release-only": boolean }> {
  return {
    command: "load-adopted",
    describe:
      "Load the profile of every domain defined with virt-aa-hook's static label (libvirt refuses such domains while it is not loaded; run at boot before libvirtd), and release kept profiles of domains no longer defined",
    builder: (y) =>
      y.option("release-only", { type: "boolean", default: false, describe: "load nothing, only release kept profiles of domains no longer defined with their label (uninstall.sh)" }) as never,
    handler: async (args) => {
      const { layout, config } = loadForCommand(args.root);
      const { loadAdopted } = await import("../../adopted/load.js");
      const r = await loadAdopted(layout, config, (line) => process.stdout.write(`${line}\n`), { releaseOnly: args["release-only"] });
      if (r.failed.length > 0) throw new ExitError(1);
    },
  };
}
