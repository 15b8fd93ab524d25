import type { CommandModule } from "yargs";
import { detectEnvironment, Parser } from "../../apparmor/index.js";
import { loadConfigForCommand } from "../config.js";
import { Layout } from "../../layout.js";
import { collectStatus, formatStatus } from "../../store/status.js";

interface StatusArgs {
  root: string;
  json: boolean;
}

/** `virt-aa-hook status [--json]`: the guests we manage, their files, loaded or not, pristine or edited. */
export function statusCommand(setExit: (code: number) => void): CommandModule<{ root: string }, StatusArgs> {
  return {
    command: "status",
    describe: "List the guests virt-aa-hook manages: profile files, loaded or not, enforce/complain, admin-modified or pristine",
    builder: (y) => y.option("json", { type: "boolean", default: false, describe: "print a JSON array" }),
    handler: (args) => {
      const layout = new Layout(args.root);
      const config = loadConfigForCommand(layout, setExit);
      if (config === undefined) return;
      const parser = new Parser(config.parser, detectEnvironment(layout, config));
      const rows = collectStatus(layout, (name) => parser.loadedMode(name));
      process.stdout.write(args.json ? JSON.stringify(rows, null, 2) + "\n" : formatStatus(rows));
    },
  };
}
