import type { CommandModule } from "yargs";
import { ExitError, formatLine, GuestError, PathError } from "../../errors.js";
import { buildProfile } from "../../pipeline.js";
import { loadForCommand } from "../config.js";
import { readInput } from "../input.js";
import { effectiveMode } from "../../store/plan.js";

interface ExplainArgs {
  file: string;
  json: boolean;
  root: string;
}

/** `virt-aa-hook explain [FILE|-]`: what this domain XML would be allowed, without touching anything. */
export function explainCommand(): CommandModule<{ root: string }, ExplainArgs> {
  return {
    command: "explain [file]",
    describe: "Print the AppArmor rules (.files) a domain XML gets, and why",
    builder: (y) =>
      y
        .positional("file", { type: "string", default: "-", describe: "domain XML file, or - for stdin" })
        .option("json", { type: "boolean", default: false, describe: "print {uuid,name,profile,mode,modeFrom,rules:[{path,suffix,perms,source}]}" })
        .example("$0 explain examples/basic.xml", "the .files text for a guest")
        .example("virsh dumpxml vm1 | $0 explain --json -", "the rules of a defined guest as JSON"),
    handler: (args) => {
      let xml: Buffer;
      try {
        xml = readInput(args.file);
      } catch (err) {
        throw new ExitError(1, formatLine("error", `cannot read ${args.file}`, (err as Error).message));
      }
      // The config's locations are refused to guests like the hook refuses them.
      const { layout, config } = loadForCommand(args.root);
      try {
        const built = buildProfile(xml, { layout });
        // The mode the hook would load the profile in, and why (store/plan.ts): refused as at prepare.
        let mode: ReturnType<typeof effectiveMode>;
        try {
          mode = effectiveMode(config, built.domain.settings?.mode);
        } catch (err) {
          if (err instanceof PathError) throw new GuestError(built.domain.name, err.path, err.reason);
          throw err;
        }
        if (args.json) {
          const { uuid, name } = built.domain;
          process.stdout.write(JSON.stringify({ uuid, name, profile: built.profileName, mode: mode.mode, modeFrom: mode.from, rules: built.rules }, null, 2) + "\n");
        } else {
          // Exactly the .files the hook writes (the lab compares them byte for byte); the mode is in --json and status.
          process.stdout.write(built.filesText);
        }
      } catch (err) {
        if (!(err instanceof GuestError)) throw err;
        throw new ExitError(1, err.toLine());
      }
    },
  };
}

