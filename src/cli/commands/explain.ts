import type { CommandModule } from "yargs";
import { GuestError } from "../../errors.js";
import { Layout } from "../../layout.js";
import { buildProfile } from "../../pipeline.js";
import { readInput } from "../input.js";

interface ExplainArgs {
  file: string;
  json: boolean;
  root: string;
}

/** `virt-aa-hook explain [FILE|-]`: what this domain XML would be allowed, without touching anything. */
export function explainCommand(setExit: (code: number) => void): CommandModule<{ root: string }, ExplainArgs> {
  return {
    command: "explain [file]",
    describe: "Print the AppArmor rules (.files) a domain XML gets, and why",
    builder: (y) =>
      y
        .positional("file", { type: "string", default: "-", describe: "domain XML file, or - for stdin" })
        .option("json", { type: "boolean", default: false, describe: "print {uuid,name,profile,rules:[{path,suffix,perms,source}]}" })
        .example("$0 explain examples/basic.xml", "the .files text for a guest")
        .example("virsh dumpxml vm1 | $0 explain --json -", "the rules of a defined guest as JSON"),
    handler: (args) => {
      let xml: Buffer;
      try {
        xml = readInput(args.file);
      } catch (err) {
        process.stderr.write(`virt-aa-hook: error: cannot read ${args.file}: ${(err as Error).message}\n`);
        setExit(1);
        return;
      }
      try {
        const built = buildProfile(xml, { layout: new Layout(args.root) });
        if (args.json) {
          const { uuid, name } = built.domain;
          process.stdout.write(JSON.stringify({ uuid, name, profile: built.profileName, rules: built.rules }, null, 2) + "\n");
        } else {
          process.stdout.write(built.filesText);
        }
      } catch (err) {
        if (!(err instanceof GuestError)) throw err;
        process.stderr.write(err.toLine() + "\n");
        setExit(1);
      }
    },
  };
}
