import type { CommandModule } from "yargs";
import { detectEnvironment, Parser, removeCacheEntries, removeStoreEntries } from "../../apparmor/index.js";
import { definitions, tasksUnder, uuidsInUse } from "../../doctor/in-use.js";
import { displayName } from "../../doctor/display.js";
import { errorReason, ExitError, formatLine } from "../../errors.js";
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

/** The plan for what is on disk now. `ownLock`: the guest whose lock this process holds. */
function planNow(layout: Layout, force: boolean, uuids = guestUuidsOnDisk(layout), ownLock?: string): PruneItem[] {
  const guests = uuids.map((u) => readGuestFiles(layout, u));
  const { defined, named } = definitions(layout);
  return planPrune({
    guests,
    defined,
    namedIn: named.naming,
    unreadable: named.unreadable,
    inUse: uuidsInUse(layout, guests, Date.now(), ownLock),
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
      "Remove what virt-aa-hook left of guests that no domain defines any more (/etc/libvirt/qemu/*.xml): the profile libvirt-<uuid>, its .files, virt-aa-hook's records, its parser-cache entries, and the loaded profile (first replaced by an empty profile that denies everything, then removed only if no task runs under it). Never touches, even with --force: a defined domain's files; a UUID that any file under /etc/libvirt/qemu names (also one virt-aa-hook cannot parse; an unreadable file there keeps everything); a guest that runs or is being started (libvirt's pid file or status XML /run/libvirt/qemu/<name>.xml, any task labelled with the profile, a record from a prepare less than 5 minutes ago, a guest lock a hook holds). Without --force it also keeps an edited profile. One line per profile: removed / would remove / kept, and why",
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
          const item = planNow(layout, args.force, [planned.uuid], planned.uuid)[0];
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
          const mode = env.target === undefined ? null : parser.loadedMode(item.profileName);
          if (mode !== null) {
            // Not a plain removal: a task that attached after the plan's scan would become
            // unconfined. An empty profile first, then look again (review19 F6).
            try {
              await parser.replaceWithStub(item.profileName);
            } catch (err) {
              kept++;
              process.stdout.write(`kept ${who(item)}: ${errorReason(err)}\n`);
              return;
            }
            const tasks = tasksUnder(layout, item.profileName);
            if (tasks.length > 0) {
              kept++;
              let now = "it stays loaded as an empty profile that denies everything";
              if (item.remove.profile) {
                try {
                  await parser.load(paths.profile, item.profileName, { skipReadCache: true, complain: mode === "complain" });
                  now = `${paths.hostProfile} is loaded again`;
                } catch (err) {
                  now += ` (${errorReason(err)})`;
                }
              }
              process.stdout.write(`kept ${who(item)}: task ${tasks.join(", ")} started under it during the prune; ${now}\n`);
              return;
            }
            try {
              if ((await parser.unload(item.profileName)) === "removed") done.push("unloaded");
            } catch (err) {
              problems.push(errorReason(err));
            }
          }
          if (item.remove.files) attempt(".files", () => removeDurably(paths.files));
          // The parser cache's own removal (src/apparmor/cache.ts), as release uses it, and the
          // compiled-policy store's entries of this profile (compiled-store.ts).
          attempt("cache entries", () => {
            const parserCache = removeCacheEntries(env.cacheDir, item.profileName).length;
            return removeStoreEntries(layout.host(layout.compiledStoreDir), item.profileName).length + parserCache > 0;
          });
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
