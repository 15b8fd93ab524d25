import fs from "node:fs";
import type { CommandModule } from "yargs";
import { displayName } from "../../doctor/display.js";
import { Layout } from "../../layout.js";
import { connectOption } from "./grant.js";
import { ExitError, formatLine, GuestError, PathError } from "../../errors.js";
import { buildProfile } from "../../pipeline.js";
import { loadForCommand } from "../config.js";
import { readInput } from "../input.js";
import { effectiveMode } from "../../store/plan.js";

interface ExplainArgs {
  target: string;
  domain?: string;
  connect: string;
  json: boolean;
  root: string;
}

/**
 * What `explain TARGET` reads: `-` is stdin; a TARGET with a `/` is a file; `--domain NAME` is
 * always the domain NAME; a bare word is a domain name, and is refused when a file of that name
 * also exists here (review19 F12: a file another user put in the working directory, /tmp or a
 * shared checkout, must not be explained as if it were the domain). A domain's live XML comes
 * from `virsh dumpxml --security-info` by absolute path (grants/virsh.ts), the same XML libvirt
 * hands the hook.
 */
export function explainSource(
  target: string,
  domain: string | undefined,
  isFile: (p: string) => boolean,
): { kind: "file"; file: string } | { kind: "domain"; name: string } | { kind: "ambiguous"; name: string } {
  if (domain !== undefined) return { kind: "domain", name: domain };
  if (target === "-" || target.includes("/")) return { kind: "file", file: target };
  if (isFile(target)) return { kind: "ambiguous", name: target };
  return { kind: "domain", name: target };
}

async function readExplained(args: ExplainArgs): Promise<Buffer> {
  const source = explainSource(args.target, args.domain, (p) => fs.statSync(p, { throwIfNoEntry: false }) !== undefined);
  if (source.kind === "ambiguous") {
    const n = displayName(source.name);
    throw new ExitError(
      1,
      formatLine("error", `cannot explain ${n}`, `it names both a file here and a domain; say ./${n} for the file or --domain ${n} for the domain`),
    );
  }
  if (source.kind === "file") {
    try {
      return readInput(source.file);
    } catch (err) {
      throw new ExitError(1, formatLine("error", `cannot read ${source.file}`, `${(err as Error).message}; name a domain XML file, - for stdin, or --domain NAME`));
    }
  }
  const { liveXmlFrom } = await import("../../grants/virsh.js");
  const layout = new Layout(args.root);
  // With --root DIR nothing of the real host is used: virsh is DIR's (a stand-in in the tests).
  const virsh = layout.isRealRoot ? layout.virsh : layout.host(layout.virsh);
  try {
    return await liveXmlFrom(virsh, args.connect)(source.name);
  } catch (err) {
    throw new ExitError(1, formatLine("error", `cannot read the XML of domain ${displayName(source.name)}`, `${(err as Error).message}; is it defined (virsh list --all)?${args.domain === undefined ? ` (a file is named with a /: ./${displayName(source.name)})` : ""}`));
  }
}

/** `virt-aa-hook explain [FILE|-|NAME] [--domain NAME]`: what this domain would be allowed, without touching anything. */
export function explainCommand(): CommandModule<{ root: string }, ExplainArgs> {
  return {
    command: "explain [target]",
    describe:
      "Print the AppArmor rules (.files) a domain gets, and why. TARGET is - for stdin, a domain XML file named with a / (./guest.xml, /tmp/guest.xml), or a domain name (its live XML from virsh dumpxml). A bare word that is also a file in the working directory is refused as ambiguous: say ./NAME for the file or --domain NAME for the domain. --domain NAME is always the domain",
    builder: (y) =>
      y
        .positional("target", { type: "string", default: "-", describe: "- for stdin, a file with a / in its name, or a domain name" })
        .option("domain", { alias: "d", type: "string", describe: "explain the domain NAME (its live XML through virsh), even if a file has that name" })
        .option("connect", connectOption)
        .option("json", { type: "boolean", default: false, describe: "print {uuid,name,profile,mode,modeFrom,rules:[{path,suffix,perms,source}]}" })
        .example("$0 explain ./guest.xml", "the .files text for a guest's XML file (a file is named with a /)")
        .example("$0 explain web1", "the rules of the domain web1 (virsh dumpxml --security-info web1)")
        .example("$0 explain --domain web1 --json", "the same as JSON (also when a file named web1 is here)"),
    handler: async (args) => {
      const xml = await readExplained(args);
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

