import type { CommandModule } from "yargs";
import { parseSince } from "../../audit/since.js";
import { ExitError, formatLine } from "../../errors.js";
import { loadForCommand } from "../config.js";

interface DenialsArgs {
  root: string;
  name?: string;
  since?: string;
  follow: boolean;
  json: boolean;
}

/** `virt-aa-hook denials [NAME]`: the kernel's AppArmor denials of guests, each mapped to the guest, its XML element and a fix. */
export function denialsCommand(): CommandModule<{ root: string }, DenialsArgs> {
  return {
    command: "denials [name]",
    describe: "Explain the kernel's AppArmor denials of guests: which guest, which XML element, what to do",
    builder: (y) =>
      y
        .positional("name", { type: "string", describe: "only this guest (domain name or UUID); default: every guest profile libvirt-<uuid>" })
        .option("since", { type: "string", describe: 'only denials from then on: "2026-12-05 10:00" (local time), an ISO time with zone, "@<epoch seconds>", or "10min", "2h", "1 day ago"' })
        .option("follow", { alias: "f", type: "boolean", default: false, describe: "after what is there, print each new denial as it is logged (until interrupted)" })
        .option("json", { type: "boolean", default: false, describe: "one JSON object per denial group, one per line (fields: docs/denials.md)" })
        .example("$0 denials web1", "what web1's QEMU was refused, and what to change")
        .example("$0 denials --since '1h' --json", "the last hour's denials of every guest, as JSON lines")
        .example("$0 denials -f", "follow new denials")
        .epilogue(
          [
            "Sources: /var/log/audit/audit.log when it exists (auditd), plus the first of: the journal (journalctl, kernel messages), /var/log/kern.log, /var/log/syslog, dmesg. An event found in two of them is shown once. With --root the files and the journal are read under DIR; dmesg only with the root /.",
            "Identical denials (same profile, operation, path, permissions, command) are shown once, with their count and first and last time. Each is mapped from its profile libvirt-<uuid> to the guest (running, defined, or known from virt-aa-hook's records), then to the rules its XML gives now (those `explain` shows), and says one of:",
            [
              "  the profile grants <perms> via <element>, but not <perms>   (partial)",
              "  nothing in the XML asks for <path>                         (not-asked)",
              "  ... and the policy refuses <path>: <reason>                (refused)",
              "  the XML now grants it: an older profile denied it          (granted-now)",
              "  the template decides it (capabilities, running programs)   (template)",
            ].join("\n"),
            "with a fix: the element to add or correct, a <vah:allow> in the domain's <metadata>, `virt-aa-hook grant` for a running guest, or why nothing can grant it. Paths and command names are untrusted: printed with control, quote and non-ASCII bytes as \\xNN. Denials of profiles that are not guests' (libvirtd, virt-aa-hook...) are not shown.",
            "Exit status: 0 (also when there is no denial), 1 when no source can be read or NAME is unknown, 2 for a usage error.",
          ].join("\n\n"),
        ),
    handler: async (args) => {
      let since: number | undefined;
      if (args.since !== undefined) {
        since = parseSince(args.since, Date.now());
        if (since === undefined) {
          throw new ExitError(2, formatLine("error", `cannot read --since ${JSON.stringify(args.since)}`, 'give a time ("2026-12-05 10:00", "2026-12-05T10:00:00Z"), "@<epoch seconds>" or a duration ("10min", "2h", "1 day ago")'));
        }
      }
      const { layout } = loadForCommand(args.root);
      const { runDenials } = await import("../../audit/run.js");
      await runDenials({
        layout,
        ...(args.name !== undefined ? { name: args.name } : {}),
        ...(since !== undefined ? { since } : {}),
        follow: args.follow,
        json: args.json,
        write: (text) => process.stdout.write(text),
      });
    },
  };
}
