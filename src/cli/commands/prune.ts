import fs from "node:fs";
import type { CommandModule } from "yargs";
import { listDefined } from "../../adopted/defined.js";
import { detectEnvironment, Parser, removeCacheEntries } from "../../apparmor/index.js";
import { runningGuests } from "../../doctor/confinement.js";
import { displayName } from "../../doctor/display.js";
import { errorReason, ExitError, formatLine } from "../../errors.js";
import { readProcessLabel } from "../../host/qemu-process.js";
import type { Layout } from "../../layout.js";
import { removeStaleStages } from "../../store/apply.js";
import { removeDurably } from "../../store/atomic.js";
import { guestUuidsOnDisk, readGuestFiles } from "../../store/leftovers.js";
import { withGuestLock } from "../../store/lock.js";
import { planPrune, type PruneItem } from "../../store/prune.js";
import { loadForCommand } from "../config.js";

interface PruneArgs {
  root: string;
  "dry-run": boolean;
  force: boolean;
}

/** Exit codes (also in --help). */
const EXIT_KEPT = 2;
const EXIT_FAILED = 1;

/**
 * UUIDs something runs under: the guests libvirt runs (pid file of a live process, with the UUID
 * from its status XML or our record), and every process whose AppArmor label is a per-guest
 * profile (a QEMU libvirt lost track of still uses it).
 */
export function uuidsInUse(layout: Layout): Set<string> {
  const inUse = new Set(runningGuests(layout).flatMap((r) => (r.uuid !== undefined ? [r.uuid] : [])));
  let pids: string[];
  try {
    pids = fs.readdirSync(layout.host(layout.procDir));
  } catch {
    return inUse;
  }
  for (const pid of pids) {
    if (!/^[1-9][0-9]*$/.test(pid)) continue;
    const label = readProcessLabel(layout, Number(pid))?.label;
    const m = label === undefined ? null : /^libvirt-([0-9a-f-]{36})(?: \([a-z_-]+\))?$/.exec(label);
    if (m) inUse.add(m[1]!);
  }
  return inUse;
}

/** The plan for what is on disk now. */
function planNow(layout: Layout, force: boolean, uuids = guestUuidsOnDisk(layout)): PruneItem[] {
  return planPrune({
    guests: uuids.map((u) => readGuestFiles(layout, u)),
    defined: new Set(listDefined(layout).map((d) => d.uuid)),
    running: uuidsInUse(layout),
    force,
  });
}

function who(item: PruneItem): string {
  return `${item.profileName} (${item.name === "-" ? "no record" : displayName(item.name)})`;
}

function parts(item: Extract<PruneItem, { action: "remove" }>): string[] {
  const r = item.remove;
  return [
    ...(r.profile ? [item.edited ? "edited profile" : "profile"] : []),
    ...(r.files ? [".files"] : []),
    ...(r.state ? ["record"] : []),
    ...(r.kept ? ["kept record"] : []),
  ];
}

/** `virt-aa-hook prune [--dry-run] [--force]`: remove the profiles and records of guests no domain defines. */
export function pruneCommand(): CommandModule<{ root: string }, PruneArgs> {
  return {
    command: "prune",
    describe:
      "Remove what virt-aa-hook left of guests that no domain defines any more (/etc/libvirt/qemu/*.xml): the profile libvirt-<uuid>, its .files, virt-aa-hook's records, its parser-cache entries, and the loaded profile. Never touches a defined domain's files, anything a running QEMU uses, or (without --force) an edited profile. One line per profile: removed / would remove / kept, and why",
    builder: (y) =>
      y
        .option("dry-run", { type: "boolean", default: false, describe: "print what would be removed; change nothing" })
        .option("force", { type: "boolean", default: false, describe: "also remove edited profiles and profiles virt-aa-hook did not write (never a running guest's)" })
        .example("$0 prune --dry-run", "what would go")
        .example("$0 prune --force", "also the admin's edited profiles of undefined domains"),
    handler: async (args) => {
      const { layout, config } = loadForCommand(args.root);
      const plan = planNow(layout, args.force);
      if (plan.length === 0) {
        process.stdout.write("nothing to prune: every profile of virt-aa-hook belongs to a defined domain\n");
        return;
      }
      const env = detectEnvironment(layout);
      const parser = new Parser(layout.parser, env, config.parserTimeout * 1000);
      let kept = 0;
      let failed = 0;
      for (const planned of plan) {
        if (planned.action === "keep") {
          kept++;
          process.stdout.write(`kept ${who(planned)}: ${planned.reason}\n`);
          continue;
        }
        const loaded = env.target !== undefined && parser.loadedMode(planned.profileName) !== null;
        if (args["dry-run"]) {
          const what = [...parts(planned), "cache entries", ...(loaded ? ["unload"] : [])];
          process.stdout.write(`would remove ${who(planned)}: ${what.join(", ")}\n`);
          continue;
        }
        const paths = readGuestFiles(layout, planned.uuid).paths;
        // Under the lock the hook takes for this guest: a start racing the prune waits, and what
        // changed before the lock was taken is planned again.
        await withGuestLock({ lockPath: paths.lock, guest: planned.name, timeoutMs: config.lockTimeout * 1000 }, async (lock) => {
          const item = planNow(layout, args.force, [planned.uuid])[0];
          if (item === undefined || item.action === "keep") {
            kept++;
            process.stdout.write(`kept ${who(planned)}: ${item?.action === "keep" ? item.reason : "its domain was defined meanwhile"}\n`);
            return;
          }
          lock.check();
          const done: string[] = [];
          const problems: string[] = [];
          const attempt = (what: string, fn: () => boolean | void) => {
            try {
              if (fn() !== false) done.push(what);
            } catch (err) {
              problems.push(`cannot remove ${what}: ${errorReason(err)}`);
            }
          };
          if (env.target !== undefined && parser.loadedMode(item.profileName) !== null) {
            try {
              if ((await parser.unload(item.profileName)) === "removed") done.push("unloaded");
            } catch (err) {
              problems.push(errorReason(err));
            }
          }
          if (item.remove.files) attempt(".files", () => removeDurably(paths.files));
          // The cache store's own removal (src/apparmor/cache.ts), as release uses it.
          attempt("cache entries", () => removeCacheEntries(env.cacheDir, item.profileName).length > 0);
          if (item.remove.profile) attempt(item.edited ? "edited profile" : "profile", () => removeDurably(paths.profile));
          attempt("staging leftovers", () => removeStaleStages(paths) > 0);
          if (item.remove.state) attempt("record", () => removeDurably(paths.state));
          if (item.remove.kept) attempt("kept record", () => removeDurably(paths.kept));
          process.stdout.write(`removed ${who(item)}: ${done.join(", ") || "nothing was left"}\n`);
          for (const p of problems) {
            failed++;
            process.stderr.write(formatLine("error", item.profileName, `${p}; run virt-aa-hook prune again once fixed`) + "\n");
          }
        });
      }
      if (failed > 0) throw new ExitError(EXIT_FAILED);
      if (kept > 0) throw new ExitError(EXIT_KEPT);
    },
  };
}
