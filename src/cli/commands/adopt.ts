import { spawnSync } from "node:child_process";
import fs from "node:fs";
import type { CommandModule } from "yargs";
import { adopt, virshAt, type ProfileLoader } from "../../attach/adopt-run.js";
import { ExitError, formatLine } from "../../errors.js";
import { loadForCommand } from "../config.js";
import type { Layout } from "../../layout.js";

interface AdoptArgs {
  root: string;
  name?: string[];
  all: boolean;
  undo: boolean;
  connect?: string;
  virsh?: string;
}

/**
 * The profile is loaded by the hook's own prepare path (same code, same files, same parser
 * options as at guest start), fed the adopted XML: `virt-aa-hook hook --root ROOT -- NAME prepare
 * begin -` (`--` so a name starting with "-" stays a name; `--root` so a test root stays one).
 */
const loadThroughHook = (layout: Layout): ProfileLoader => (name, xml) => {
  const script = process.argv[1];
  if (!script) throw new Error("cannot find the virt-aa-hook bundle to load the profile");
  const r = spawnSync(process.execPath, [script, "hook", "--root", layout.root, "--", name, "prepare", "begin", "-"], {
    input: xml,
    encoding: "utf8",
    env: { LC_ALL: "C" },
  });
  if (r.status !== 0) {
    throw new Error(`cannot load the profile first: ${(r.stderr || `exit ${r.status}`).trim().split("\n").join(" ")}`);
  }
};

/** `virt-aa-hook adopt NAME... | --all [--undo]` */
export function adoptCommand(): CommandModule<{ root: string }, AdoptArgs> {
  return {
    command: "adopt [name..]",
    describe: "Switch defined domains to the configured attach mode (emulator wrapper or static seclabel)",
    builder: (y) =>
      y
        .positional("name", { type: "string", array: true, describe: "domain names" })
        .option("all", { type: "boolean", default: false, describe: "every defined domain" })
        .option("undo", { type: "boolean", default: false, describe: "take the wrapper and our seclabel out again" })
        .option("connect", { alias: "c", type: "string", describe: "libvirt URI for virsh (default: virsh's)" })
        .option("virsh", { type: "string", hidden: true, describe: "virsh by absolute path (under --root with --root; default: the layout's)" })
        .example("$0 adopt web1", "confine guest web1 from its next start")
        .example("$0 adopt --all --undo", "before uninstalling"),
    handler: async (args) => {
      const names = args.name ?? [];
      if (args.all === names.length > 0) {
        throw new ExitError(2, formatLine("error", "adopt", "name one or more domains, or pass --all (not both)"));
      }
      const { layout, config } = loadForCommand(args.root);
      if (!args.undo && config.attach === "none") {
        throw new ExitError(1, formatLine("error", "adopt", `${layout.configPath} has attach = "none": set attach = "wrapper" or "seclabel" first`));
      }
      const virsh = args.virsh ?? layout.virsh;
      const outcome = await adopt({
        names,
        all: args.all,
        undo: args.undo,
        mode: config.attach,
        paths: { wrapperDir: layout.wrapperDir, emulatorDir: layout.emulatorDir },
        // With --root DIR nothing of the real host is used: virsh is DIR's (a stand-in), its
        // temporary XML goes to DIR/tmp, the profile is loaded by the hook under DIR.
        virsh: layout.isRealRoot ? virshAt(virsh, args.connect) : virshAt(layout.host(virsh), args.connect, layout.host(layout.tmpDir)),
        loadProfile: loadThroughHook(layout),
        wrapperExists: (emu) => fs.existsSync(layout.host(`${layout.wrapperDir}/${emu}`)),
        out: (line) => process.stdout.write(`${line}\n`),
      });
      if (outcome.failed.length > 0) throw new ExitError(1);
    },
  };
}
