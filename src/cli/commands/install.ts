/**
 * `virt-aa-hook install` / `uninstall` (what install/install.sh and uninstall.sh run with the
 * bundle of the source tree), and `install-summary` (what is confined on this host and what is
 * not). The work is in src/install/; a refusal ends the command with an ExitError.
 */
import path from "node:path";
import type { CommandModule } from "yargs";
import { loadForCommand } from "../config.js";

interface InstallArgs {
  root: string;
  "dry-run": boolean;
  reload: boolean;
  "adopt-all": boolean;
  node: string;
  "libvirt-version"?: string;
  source: string;
}

const out = (text: string) => process.stdout.write(text);

/** `virt-aa-hook install [--root DIR] [--dry-run] [--reload] [--adopt-all] [--node PATH] [--libvirt-version X.Y.Z] [--source DIR]` */
export function installCommand(): CommandModule<{ root: string }, InstallArgs> {
  return {
    command: "install",
    describe: "Install (or upgrade) virt-aa-hook on this host from a source tree (install/install.sh runs it)",
    builder: (y) =>
      y
        .option("dry-run", { type: "boolean", default: false, describe: "print what would be done, change nothing" })
        .option("reload", { type: "boolean", default: false, describe: "send SIGHUP to libvirtd (its pidfile) so it finds the hook now" })
        .option("adopt-all", { type: "boolean", default: false, describe: "then switch every defined domain to the configured attach mode (virt-aa-hook adopt --all)" })
        .option("node", { type: "string", default: process.execPath, describe: "node binary the hook runs (Node >= 18.19)" })
        .option("libvirt-version", { type: "string", describe: "skip detecting the libvirt version with `libvirtd --version`" })
        // The bundle of a source tree is its dist/virt-aa-hook.cjs.
        .option("source", { type: "string", default: path.resolve(path.dirname(process.argv[1] ?? "."), ".."), describe: "source tree holding dist/, hooks/ and install/" }) as never,
    handler: async (args) => {
      const { runInstall } = await import("../../install/run.js");
      await runInstall(
        {
          root: args.root,
          dryRun: args["dry-run"],
          reload: args.reload,
          adoptAll: args["adopt-all"],
          node: args.node,
          ...(args["libvirt-version"] !== undefined ? { libvirtVersion: args["libvirt-version"] } : {}),
          source: args.source,
        },
        out,
      );
    },
  };
}

/** `virt-aa-hook uninstall [--root DIR] [--dry-run] [--reload] [--force]` */
export function uninstallCommand(): CommandModule<{ root: string }, { root: string; "dry-run": boolean; reload: boolean; force: boolean }> {
  return {
    command: "uninstall",
    describe: "Remove virt-aa-hook and put back exactly what install found (install/uninstall.sh runs it)",
    builder: (y) =>
      y
        .option("dry-run", { type: "boolean", default: false, describe: "print what would be done, change nothing" })
        .option("reload", { type: "boolean", default: false, describe: "send SIGHUP to libvirtd so it forgets the hook" })
        .option("force", { type: "boolean", default: false, describe: "even while guests still use the wrapper or our static label" }) as never,
    handler: async (args) => {
      const { runUninstall } = await import("../../install/run.js");
      await runUninstall({ root: args.root, dryRun: args["dry-run"], reload: args.reload, force: args.force }, out);
    },
  };
}

/** `virt-aa-hook install-summary [--config-written]`: what is confined on this host and what is not. */
export function installSummaryCommand(): CommandModule<{ root: string }, { root: string; "config-written": boolean }> {
  return {
    command: "install-summary",
    describe: "(printed by install) what is confined on this host and what is not",
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
