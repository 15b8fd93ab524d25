import type { CommandModule } from "yargs";
import { formatReport, runDoctor } from "../../doctor/checks.js";
import { ExitError } from "../../errors.js";
import { Layout } from "../../layout.js";

/** `virt-aa-hook doctor`: check the installation and the host; exit 0 when all is well, 1 otherwise. */
export function doctorCommand(): CommandModule<{ root: string }, { root: string }> {
  return {
    command: "doctor",
    describe: "Check the installation and the host, and print what to fix",
    handler: async (args) => {
      const { libvirtVersion } = await import("../../install/probes.js");
      const layout = new Layout(args.root);
      const checks = await runDoctor({ layout, libvirtVersion: () => libvirtVersion(layout.libvirtDaemons) });
      process.stdout.write(formatReport(checks));
      if (checks.some((c) => c.status === "fail")) throw new ExitError(1);
    },
  };
}
