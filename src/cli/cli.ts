import yargs from "yargs";
import { ExitError, formatLine } from "../errors.js";
import { explainCommand } from "./commands/explain.js";
import { hookCommand } from "./commands/hook.js";
import { statusCommand } from "./commands/status.js";
import { adoptCommand } from "./commands/adopt.js";
import { doctorCommand } from "./commands/doctor.js";
import { loadAdoptedCommand } from "./commands/load-adopted.js";
import { installCommand, installSummaryCommand, uninstallCommand } from "./commands/install.js";
import { grantCommand } from "./commands/grant.js";
import { revokeCommand } from "./commands/revoke.js";
import { syncCommand } from "./commands/sync.js";
import { denialsCommand } from "./commands/denials.js";

/**
 * The admin-facing CLI. Each command lives in its own module under commands/. A command that ends
 * otherwise than with 0 throws ExitError; this is the one place that prints its line and turns it
 * into the exit code. Any other error is a bug and reaches main's "internal error".
 */
export async function runCli(argv: string[]): Promise<number> {
  try {
    await parse(argv);
    return 0;
  } catch (err) {
    if (!(err instanceof ExitError)) throw err;
    if (err.line !== undefined) process.stderr.write(`${err.line}\n`);
    return err.code;
  }
}

async function parse(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("virt-aa-hook")
    .usage("$0 <command> [options]\n\nPer-guest AppArmor confinement for libvirt QEMU guests.")
    .option("root", {
      type: "string",
      default: "/",
      describe: "Treat DIR as the host's /: every host path read or written is taken under DIR",
      global: true,
    })
    .command(explainCommand())
    .command(hookCommand())
    .command(statusCommand())
    .command(adoptCommand())
    .command(doctorCommand())
    .command(loadAdoptedCommand())
    .command(grantCommand())
    .command(revokeCommand())
    .command(syncCommand())
    .command(denialsCommand())
    .command(installCommand())
    .command(uninstallCommand())
    .command(installSummaryCommand())
    .demandCommand(1, "name a command (see --help)")
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new ExitError(2, formatLine("error", msg));
    })
    .parseAsync();
}
