/**
 * What every command's `--help` says beyond its options: the exit status and at least one example.
 * The man page virt-aa-hook(8) is generated from `--help` (packaging), so this is its EXIT STATUS
 * and EXAMPLES. cli.ts adds each command's entry to its help (withCommandHelp); a command without
 * an entry here fails test/cli/help.test.ts, which enumerates the commands yargs knows.
 */
import type { Argv, CommandModule } from "yargs";

export interface CommandHelp {
  /** `$0 ...` command lines and what each does; only for commands whose builder has none. */
  examples?: readonly (readonly [string, string])[];
  /** One line per exit code, "N  meaning". */
  exitStatus: readonly string[];
  /** Said before the exit status, when the purpose line cannot say it all. */
  notes?: string;
}

/** The codes every admin command shares (runCli and main.ts). */
const USAGE = "2  a usage error: an unknown command or option, a missing argument (the line says which)";
const INTERNAL = "70 an internal error (a bug: the line has the stack; please report it)";
const CONFIG = "1  also: /etc/libvirt/virt-aa-hook.conf cannot be used (the line names its line and key)";

export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  explain: {
    exitStatus: ["0  printed the rules", "1  the XML cannot be read or the policy refuses it (one line: the element and why)", CONFIG, USAGE, INTERNAL],
  },
  hook: {
    examples: [["$0 hook web1 prepare begin - < web1.xml", "what libvirt runs (through /etc/libvirt/hooks/qemu) before it starts web1"]],
    exitStatus: [
      "0  done, or nothing to do; always for stopped, release and unknown operations, for migrate and restore unless the config cannot be used (stdout: the XML adopted for this host's attach mode, or nothing), and for reconnect unless reconnect_failure = \"fail\"",
      "1  prepare, start or started failed: libvirt does not start the guest (the line says why); migrate or restore with a config that cannot be used: libvirt refuses the migration (the restore); reconnect with reconnect_failure = \"fail\": libvirt kills the guest",
      "2  not called as libvirt calls a hook (four arguments after the options)",
      INTERNAL,
    ],
  },
  "network-hook": {
    examples: [["$0 network-hook default port-created begin - < port.xml", "what libvirt runs (through /etc/libvirt/hooks/network) when it plugs a guest's NIC in"]],
    exitStatus: [
      "0  done, nothing to do, port-deleted, or a port of a guest virt-aa-hook does not manage",
      "1  a port-created whose grant cannot be applied: the NIC attach or the guest start fails",
      "2  not called as libvirt calls a hook",
      INTERNAL,
    ],
  },
  "virt-aa-helper": {
    examples: [["$0 virt-aa-helper -- -c -u libvirt-UUID < domain.xml", "what libvirt's AppArmor driver runs (through its diverted virt-aa-helper) to create a profile"]],
    exitStatus: ["0  done (or -h: libvirt's usage on stdout)", "1  anything else: libvirt fails the operation with the line on stderr (libvirt knows only 0 and 1)"],
  },
  status: {
    examples: [
      ["$0 status", "a table: one line per guest"],
      ["$0 status --json", "the same rows as a JSON array, for scripts"],
    ],
    exitStatus: ["0  printed the guests", CONFIG, USAGE, INTERNAL],
  },
  adopt: {
    exitStatus: ["0  every named domain adopted (or undone)", "1  a domain could not be adopted (its line says why; the others are), or attach = \"none\"", CONFIG, "2  names and --all together, or neither; or another usage error", INTERNAL],
  },
  doctor: {
    examples: [
      ["$0 doctor", "one line per check: ok, warn, fail or skip, and what to do"],
      ["$0 doctor --json", "the same checks as a JSON array, for scripts and configuration engines"],
    ],
    exitStatus: ["0  no check failed (warnings are not failures)", "1  a check failed: its line says what to fix", USAGE, INTERNAL],
  },
  "load-adopted": {
    examples: [["$0 load-adopted", "at boot, before libvirtd (its systemd unit runs this)"]],
    exitStatus: ["0  every profile loaded (or released)", "1  a profile could not be loaded or released (its line says why)", CONFIG, USAGE, INTERNAL],
  },
  grant: {
    exitStatus: ["0  granted: the profile is reloaded", "1  refused (the policy, a guest not running or not managed) or failed; the line says why", "2  PATH is not absolute, or another usage error", CONFIG, INTERNAL],
  },
  revoke: {
    examples: [["$0 revoke web1 /var/lib/libvirt/images/base.qcow2", "after virsh blockcommit"]],
    exitStatus: ["0  revoked: the profile is reloaded", "1  no such grant, or failed; the line says why", "2  PATH is not absolute, or another usage error", CONFIG, INTERNAL],
  },
  sync: {
    exitStatus: ["0  the profile matches the live XML", "1  refused or failed; the line says why", CONFIG, USAGE, INTERNAL],
  },
  denials: {
    exitStatus: ["0  printed the denials (also when there is none)", "1  no log source can be read, or NAME is no guest virt-aa-hook knows", "2  --since cannot be read, or another usage error", CONFIG, INTERNAL],
  },
  prune: {
    exitStatus: [
      "0  everything left over was removed (with --dry-run: would be), or there was nothing",
      "1  a removal failed (its line says why)",
      "2  something was kept: edited, not virt-aa-hook's, or in use (its line says why)",
      CONFIG,
      INTERNAL,
    ],
  },
  install: {
    examples: [
      ["$0 install --dry-run", "what install would change, changing nothing"],
      ["install/install.sh --reload", "the usual way: the script checks node and runs this command"],
    ],
    exitStatus: ["0  installed (or nothing to change)", "1  refused before changing anything; the line says why and what to do", USAGE, INTERNAL],
  },
  uninstall: {
    examples: [["$0 uninstall --dry-run", "what uninstall would remove and put back"]],
    exitStatus: ["0  uninstalled", "1  refused (e.g. guests still use the wrapper or our label; see --force); the line says why", USAGE, INTERNAL],
  },
  "install-summary": {
    examples: [["$0 install-summary", "what is confined on this host and what is not"]],
    exitStatus: ["0  printed", CONFIG, USAGE, INTERNAL],
  },
  completion: {
    notes:
      "The script is yargs' own: it asks `virt-aa-hook --get-yargs-completions WORDS...` for the candidates, so it completes every command and option this version has. yargs prints zsh's or fish's script instead when $SHELL names zsh or fish; SHELL=/bin/bash gives bash's whatever the shell.",
    examples: [["SHELL=/bin/bash $0 completion > /etc/bash_completion.d/virt-aa-hook", "complete command names and options in bash"]],
    exitStatus: ["0  printed the script", USAGE],
  },
};

/** The end of `virt-aa-hook --help`. */
export const TOP_LEVEL_HELP = [
  "Every command has its own --help: what it does, its arguments and options, its exit status and examples.",
  "",
  "Files: /etc/libvirt/virt-aa-hook.conf (settings), /etc/apparmor.d/libvirt/libvirt-UUID and libvirt-UUID.files (each guest's profile and its rules), /var/lib/virt-aa-hook (what the hook wrote), /var/log/libvirt/virt-aa-hook.log (one line per hook call).",
  "",
  "Exit status:",
  hanging("  0  done", 5),
  hanging("  1  refused or failed: one line, virt-aa-hook: error: ..., says why and what to do", 5),
  hanging(`  ${USAGE}`, 5),
  hanging(`  ${INTERNAL}`, 5),
].join("\n");

/** The first word of a yargs command string ("grant <name> <path>" -> "grant"). */
export function commandName(command: string | readonly string[] | undefined): string {
  const first = Array.isArray(command) ? command[0] : command;
  return String(first ?? "").split(" ")[0] ?? "";
}

/** `y`'s commands' help with their exit status and examples from COMMAND_HELP. */
export function helpFor(name: string, y: Argv): Argv {
  const help = COMMAND_HELP[name];
  if (!help) return y;
  for (const [cmd, what] of help.examples ?? []) y.example(cmd, what);
  if (help.notes) y.epilogue(`${help.notes}\n`);
  return y.epilogue(`Exit status:\n${help.exitStatus.map((l) => hanging(`  ${l}`, 5)).join("\n")}`);
}

/** Help is wrapped at 80 columns; yargs would wrap an exit status line flush left, this indents it. */
function hanging(line: string, indent: number, width = 78): string {
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(" ", width);
    if (cut <= indent) break;
    out.push(rest.slice(0, cut));
    rest = `${" ".repeat(indent)}${rest.slice(cut + 1)}`;
  }
  out.push(rest);
  return out.join("\n");
}

/** A command module whose builder also adds its COMMAND_HELP entry to its help. */
export function documented<T, U>(m: CommandModule<T, U>): CommandModule<T, U> {
  const name = commandName(m.command);
  const builder = m.builder;
  return {
    ...m,
    builder: (y: Argv<T>) => {
      const built = typeof builder === "function" ? builder(y) : builder ? y.options(builder) : y;
      return helpFor(name, built as unknown as Argv) as unknown as Argv<U>;
    },
  };
}

/**
 * `y` with its `command(module)` adding each module's COMMAND_HELP entry (documented), so the
 * command list in cli.ts stays a plain list of `.command(xCommand())`. Other forms pass through.
 */
export function withCommandHelp<T>(y: Argv<T>): Argv<T> {
  const command = y.command.bind(y) as (...args: unknown[]) => Argv<T>;
  const wrapped = (...args: unknown[]) =>
    args.length === 1 && typeof args[0] === "object" && args[0] !== null && !Array.isArray(args[0])
      ? command(documented(args[0] as CommandModule))
      : command(...args);
  Object.assign(y, { command: wrapped });
  return y;
}
