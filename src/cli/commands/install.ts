/**
 * Commands install.sh runs with the bundle it is installing: the logic that reads the host lives
 * here, in TypeScript, rather than in the shell script.
 */
import fs from "node:fs";
import path from "node:path";
import type { CommandModule } from "yargs";
import { ExitError, formatLine } from "../../errors.js";
import { loadForCommand } from "../config.js";
import { Layout } from "../../layout.js";

interface FilesArgs {
  root: string;
  out: string;
  "shipped-config": string;
  "fallback-abstraction": string;
  "fallback-template": string;
}

/**
 * `virt-aa-hook install-files --out DIR ...`: writes into DIR what install.sh installs from this
 * host's state: `virt-aa-hook.conf` (the shipped config with the attach mode chosen from qemu.conf
 * and the kernel; install.sh uses it only where no config exists), `virt-aa-hook-qemu` (the
 * abstraction) and `TEMPLATE.virt-aa-hook-qemu`, derived from the host's libvirt files, or from
 * the fallbacks install.sh would install when the host has none.
 */
export function installFilesCommand(): CommandModule<{ root: string }, FilesArgs> {
  return {
    command: "install-files",
    describe: "(used by install.sh) write the config, abstraction and template derived from this host into --out",
    builder: (y) =>
      y
        .option("out", { type: "string", demandOption: true })
        .option("shipped-config", { type: "string", demandOption: true })
        .option("fallback-abstraction", { type: "string", demandOption: true })
        .option("fallback-template", { type: "string", demandOption: true }) as never,
    handler: async (args) => {
      const { chooseAttach, readSecurityDriver } = await import("../../install/host.js");
      const d = await import("../../install/derive.js");
      const layout = new Layout(args.root);
      const hostOr = (hostPath: string, fallback: string): [string, string] => {
        const p = layout.host(hostPath);
        return fs.existsSync(p) ? [fs.readFileSync(p, "utf8"), hostPath] : [fs.readFileSync(fallback, "utf8"), hostPath];
      };
      try {
        const choice = chooseAttach(readSecurityDriver(layout));
        const [abstraction, aFrom] = hostOr(d.LIBVIRT_ABSTRACTION, args["fallback-abstraction"]);
        const [template, tFrom] = hostOr(d.LIBVIRT_TEMPLATE, args["fallback-template"]);
        fs.writeFileSync(path.join(args.out, "virt-aa-hook.conf"), d.installedConfig(fs.readFileSync(args["shipped-config"], "utf8"), choice));
        fs.writeFileSync(path.join(args.out, "virt-aa-hook-qemu"), d.deriveAbstraction(abstraction, aFrom).text);
        fs.writeFileSync(path.join(args.out, "TEMPLATE.virt-aa-hook-qemu"), d.deriveTemplate(template, tFrom));
      } catch (err) {
        throw new ExitError(1, formatLine("error", "install-files", (err as Error).message));
      }
    },
  };
}

/** `virt-aa-hook install-summary [--config-written]`: what is confined on this host and what is not. */
export function installSummaryCommand(): CommandModule<{ root: string }, { root: string; "config-written": boolean }> {
  return {
    command: "install-summary",
    describe: "(used by install.sh) print what is confined on this host and what is not",
    builder: (y) => y.option("config-written", { type: "boolean", default: false }) as never,
    handler: async (args) => {
      const { layout, config } = loadForCommand(args.root);
      const { summaryLines } = await import("../../install/summary.js");
      for (const line of summaryLines(layout, config, { configWritten: args["config-written"] })) {
        process.stdout.write(`virt-aa-hook install: ${line}\n`);
      }
    },
  };
}
