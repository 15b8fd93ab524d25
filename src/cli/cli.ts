import yargs from "yargs";
import { explainCommand } from "./commands/explain.js";
import { hookCommand } from "./commands/hook.js";
import { statusCommand } from "./commands/status.js";
import { adoptCommand } from "./commands/adopt.js";
import { doctorCommand } from "./commands/doctor.js";
import { loadAdoptedCommand } from "./commands/load-adopted.js";
import { installCommand, installSummaryCommand, uninstallCommand } from "./commands/install.js";
import { ExitError } from "../errors.js";

/** The admin-facing CLI. Each command lives in its own module under commands/. */
export async function runCli(argv: string[]): Promise<number> {
  let exitCode = 0;
  try {
  await yargs(argv)
    .scriptName("virt-aa-hook")
    .usage("$0 <command> [options]\n\nPer-guest AppArmor confinement for libvirt QEMU guests.")
    .option("root", {
      type: "string",
      default: "/",
      describe: "Treat DIR as the host's /: every host path read or written is taken under DIR",
      global: true,
    })
    .command(explainCommand((c) => (exitCode = c)))
    .command(hookCommand((c) => (exitCode = c)))
    .command(statusCommand((c) => (exitCode = c)))
    .command(adoptCommand((c) => (exitCode = c)))
    .command(doctorCommand())
    .command(loadAdoptedCommand((c) => (exitCode = c)))
    .command(installCommand())
    .command(uninstallCommand())
    .command(installSummaryCommand())
    .demandCommand(1, "name a command (see --help)")
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`virt-aa-hook: error: ${msg}\n`);
      exitCode = 2;
    })
    .parseAsync();
  } catch (err) {
    // A command ended with an ExitError (src/errors.ts): its line, its code.
    if (!(err instanceof ExitError)) throw err;
    if (err.line !== undefined) process.stderr.write(`${err.line}\n`);
    return err.code;
  }
  return exitCode;
}
