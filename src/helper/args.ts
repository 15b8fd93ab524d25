/**
 * The command line of our virt-aa-helper stand-in (docs/helper.md):
 *
 *   virt-aa-helper [--root DIR] -- HELPER-ARGS...
 *
 * `--root` and `--` come from hooks/virt-aa-helper; HELPER-ARGS are exactly what libvirt passed to
 * `/usr/lib/libvirt/virt-aa-helper`, parsed as libvirt's own helper parses them: getopt_long with
 * the option string `acdDhrRH:b:u:p:f:F:` and its long options, processed left to right.
 *
 * - Modes `-a -c -r -R -D`: the last one given wins. `-d` is a dry run. `-h` prints the usage and
 *   exits 0 at the point it is reached (an earlier bad option has already failed the call).
 * - `-u NAME` (or `-uNAME`, `--uuid NAME`, `--uuid=NAME`): the profile, `libvirt-` and a canonical
 *   UUID (src/names.ts), which is what libvirt always sends.
 * - `-f PATH` / `-F PATH`: the extra file; the last one wins (`-F` appends, `-f` regenerates and
 *   adds). An option's argument is the next word whatever it looks like (`-F -x` names "-x").
 * - `-H`, `-b`, `-p` take an argument and then fail as unsupported, as in libvirt's helper, whose
 *   switch has no case for them.
 * - Short options cluster (`-rd`); long options may be abbreviated to a unique prefix.
 *
 * Stricter than libvirt's helper, where it never matters to libvirt: a word that is not an option
 * is refused (GNU getopt would move it aside and the helper ignore it), and `--add-file` /
 * `--append-file` are refused (declared without an argument there, so they cannot name a file).
 */
import { isProfileName } from "../names.js";

export type HelperMode = "a" | "c" | "r" | "R" | "D";

export interface HelperArgs {
  mode: HelperMode;
  /** `libvirt-<uuid>`. */
  profileName: string;
  /** Canonical lower-case UUID. */
  uuid: string;
  dryRun: boolean;
  /** `-F` (append: true) or `-f` (append: false). */
  file?: { path: string; append: boolean };
}

export interface HelperInvocation {
  root: string;
  args: HelperArgs;
  /** The words after `--`, for the log (never stdin). */
  argv: string[];
}

export type ParsedHelper = { kind: "help" } | { kind: "run"; invocation: HelperInvocation };

export class UsageError extends Error {}

export const HELPER_USAGE = `
virt-aa-helper mode [options] [extra file] [< def.xml]

  Modes:
    -a | --add                     load profile
    -c | --create                  create profile from template
    -D | --delete                  unload profile and delete generated rules
    -r | --replace                 reload profile
    -R | --remove                  unload profile
  Options:
    -d | --dryrun                  dry run
    -u | --uuid <uuid>             uuid (profile name)
    -h | --help                    this help
  Extra File:
    -f <file>                      add file to a profile generated from XML
    -F <file>                      append file to an existing profile

virt-aa-hook's stand-in for libvirt's virt-aa-helper (docs/helper.md): the rules come from
virt-aa-hook's generator and policy. This command is intended to be used by libvirtd.
`;

/** Short options that take an argument (`H:b:u:p:f:F:`) and those that do not (`acdDhrR`). */
const WITH_ARG = new Set(["H", "b", "u", "p", "f", "F"]);
const FLAGS = new Set(["a", "c", "d", "D", "h", "r", "R"]);

/** libvirt's long options, as the short option each stands for; null: declared but unusable here. */
const LONG: ReadonlyArray<[name: string, short: string | null, hasArg: boolean]> = [
  ["add", "a", false],
  ["create", "c", false],
  ["dryrun", "d", false],
  ["delete", "D", false],
  ["add-file", null, false],
  ["append-file", null, false],
  ["help", "h", false],
  ["replace", "r", false],
  ["remove", "R", false],
  ["uuid", "u", true],
];

/** The whole command line: our `--root` first, then libvirt's words after `--`. */
export function parseHelperCommand(words: readonly string[]): ParsedHelper {
  let root = "/";
  let i = 0;
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w === "--") {
      i++;
      break;
    }
    if (w === "--root") {
      const v = words[i + 1];
      if (v === undefined || v === "") throw new UsageError("--root needs a directory");
      root = v;
      i++;
    } else if (w.startsWith("--root=")) {
      root = w.slice("--root=".length);
      if (root === "") throw new UsageError("--root needs a directory");
    } else {
      // hooks/virt-aa-helper always puts "--" before libvirt's words.
      throw new UsageError(`expected "--" before the helper's arguments, got ${JSON.stringify(w)}`);
    }
  }
  const argv = words.slice(i);
  const parsed = parseHelperArgs(argv);
  if (parsed === "help") return { kind: "help" };
  return { kind: "run", invocation: { root, args: parsed, argv } };
}

/** libvirt's words, getopt-style, left to right (see the file comment). */
export function parseHelperArgs(argv: readonly string[]): HelperArgs | "help" {
  let mode: HelperMode | undefined;
  let uuidArg: string | undefined;
  let dryRun = false;
  let file: HelperArgs["file"];

  /** One option with its argument (if it takes one); "help" stops here, like exit(EXIT_SUCCESS). */
  const apply = (opt: string, arg: string | undefined, shown: string): "help" | undefined => {
    switch (opt) {
      case "a":
      case "c":
      case "r":
      case "R":
      case "D":
        mode = opt;
        return undefined;
      case "d":
        dryRun = true;
        return undefined;
      case "h":
        return "help";
      case "u":
        uuidArg = arg!;
        return undefined;
      case "f":
      case "F":
        file = { path: arg!, append: opt === "F" };
        return undefined;
      default:
        // -H, -b, -p: in the option string, not in the helper's switch.
        throw new UsageError(`unsupported option ${shown}`);
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === "--") {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument ${JSON.stringify(argv[i + 1])}`);
      break;
    }
    if (w.startsWith("--")) {
      const eq = w.indexOf("=");
      const name = eq < 0 ? w.slice(2) : w.slice(2, eq);
      const exact = LONG.filter(([n]) => n === name);
      const matches = exact.length > 0 ? exact : LONG.filter(([n]) => n.startsWith(name));
      if (name === "" || matches.length === 0) throw new UsageError(`unsupported option ${w}`);
      if (matches.length > 1) throw new UsageError(`option ${w} is ambiguous`);
      const [long, short, hasArg] = matches[0]!;
      if (short === null) throw new UsageError(`unsupported option --${long} (use -f or -F)`);
      let arg: string | undefined;
      if (hasArg) {
        arg = eq >= 0 ? w.slice(eq + 1) : argv[++i];
        if (arg === undefined) throw new UsageError(`option --${long} needs an argument`);
      } else if (eq >= 0) {
        throw new UsageError(`option --${long} takes no argument`);
      }
      if (apply(short, arg, `--${long}`) === "help") return "help";
      continue;
    }
    if (!w.startsWith("-") || w === "-") throw new UsageError(`unexpected argument ${JSON.stringify(w)}`);
    // A cluster of short options; one that takes an argument ends the cluster.
    for (let j = 1; j < w.length; j++) {
      const opt = w[j]!;
      if (WITH_ARG.has(opt)) {
        let arg: string | undefined = w.slice(j + 1);
        if (arg === "") arg = argv[++i];
        if (arg === undefined) throw new UsageError(`option -${opt} needs an argument`);
        if (apply(opt, arg, `-${opt}`) === "help") return "help";
        break;
      }
      if (!FLAGS.has(opt)) throw new UsageError(`unsupported option -${opt}`);
      if (apply(opt, undefined, `-${opt}`) === "help") return "help";
    }
  }

  if (mode === undefined) throw new UsageError("bad command: no mode (-a, -c, -r, -R or -D)");
  if (uuidArg === undefined) throw new UsageError("invalid UUID: -u libvirt-<uuid> is missing");
  if (!isProfileName(uuidArg)) throw new UsageError(`invalid UUID ${JSON.stringify(uuidArg)}: expected libvirt-<uuid> in canonical form`);
  if (file !== undefined && mode !== "c" && mode !== "r") throw new UsageError(`-${file.append ? "F" : "f"} is only valid with -c or -r`);
  return { mode, profileName: uuidArg, uuid: uuidArg.slice("libvirt-".length), dryRun, ...(file ? { file } : {}) };
}
