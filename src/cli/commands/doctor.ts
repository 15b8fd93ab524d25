import type { CommandModule } from "yargs";
import { formatReport, runDoctor } from "../../doctor/checks.js";
import { ExitError } from "../../errors.js";
import { Layout } from "../../layout.js";

/**
 * `virt-aa-hook doctor [--json]`: check the installation and the host; exit 0 when all is well, 1
 * otherwise. `--json` prints the same checks as a JSON array of { name, status, detail, fix? } for
 * configuration engines (deploy/ansible reads it), with the same exit status.
 */
export function doctorCommand(): CommandModule<{ root: string }, { root: string; json: boolean }> {
  return {
    command: "doctor",
    describe: "Check the installation and the host, and print what to fix",
    builder: (y) => y.option("json", { type: "boolean", default: false, describe: "print the checks as a JSON array of {name, status (ok, warn, fail, skip), detail, fix}" }),
    handler: async (args) => {
      const { libvirtVersion } = await import("../../install/probes.js");
      const layout = new Layout(args.root);
      const checks = await runDoctor({ layout, libvirtVersion: () => libvirtVersion(layout.libvirtDaemons) });
      process.stdout.write(args.json ? JSON.stringify(checks, null, 2) + "\n" : formatReport(checks));
      if (checks.some((c) => c.status === "fail")) throw new ExitError(1);
    },
  };
}
