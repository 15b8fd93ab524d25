/**
 * The corpus: real-world domain XMLs (test/corpus/domains/) through our generator, each in a temp
 * root holding the host files it needs, against the outcome test/corpus/expected.json states; and,
 * where this machine has libvirt's own virt-aa-helper, every path libvirt's generator grants
 * checked against ours. docs/corpus.md explains the manifest, `pending` and how to add an entry.
 *
 * CORPUS_UPDATE=1 rewrites the observed parts of expected.json (`error`, `rules`, new
 * `libvirtOnly` keys with a "TODO" reason, which the manifest check then refuses) for review in
 * git diff; it never removes `pending` or writes a `why`.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileProfile, FEATURES, PARSER } from "../helpers/apparmor.js";
import {
  CORPUS_DIR,
  corpusFiles,
  covers,
  generate,
  hostRootFor,
  libvirtHelper,
  loadManifest,
  oracleProblems,
  outcomeProblems,
  readDomain,
  runLibvirt,
  tempParent,
  type Expectation,
  type LibvirtOutcome,
  type Outcome,
} from "./corpus.js";

const manifest = loadManifest();
const files = corpusFiles();
const UPDATE = process.env.CORPUS_UPDATE === "1";

/**
 * The owners (RULES.md file ownership) of the known gaps the corpus still pins: a pending entry
 * names one of them. No helper is in flight since the issue-18 merges; two gaps remain
 * (docs/corpus.md, "pending").
 */
const HELPERS = ["devices", "storage"];

let parent: { dir: string; cleanup: () => void };
const outcomes = new Map<string, Outcome>();

beforeAll(() => {
  parent = tempParent();
});
afterAll(() => {
  parent?.cleanup();
  if (UPDATE) writeUpdatedManifest();
});

/** Our outcome for one entry, built once (the oracle section reuses it). */
function outcomeOf(file: string): Outcome {
  let out = outcomes.get(file);
  if (out === undefined) {
    const xml = readDomain(file);
    out = generate(xml, hostRootFor(parent.dir, file, xml, manifest[file]));
    outcomes.set(file, out);
  }
  return out;
}

describe("the corpus manifest", () => {
  it("has one entry per domain XML and no other", () => {
    expect(Object.keys(manifest).sort()).toEqual(files);
  });

  it.each(files)("%s: its entry is complete", (file) => {
    const e = manifest[file]!;
    const problems: string[] = [];
    if (!e.kind) problems.push("no kind");
    if (e.outcome !== "ok" && e.outcome !== "refused") problems.push(`outcome ${String(e.outcome)}`);
    if (e.outcome === "refused" && !e.error) problems.push("refused without the exact error");
    if (e.outcome === "refused" && !e.pending && !e.why) problems.push("refused on purpose without why");
    if (e.outcome === "ok" && e.error) problems.push("ok with an error");
    // A pending ok entry pins today's rules exactly, so the helper's new rules make it fail.
    if (e.pending && e.outcome === "ok" && !e.rules) problems.push("pending ok entry without today's rules");
    if (e.pending && !HELPERS.some((h) => e.pending!.startsWith(`${h}: `))) problems.push(`pending does not start with one of ${HELPERS.join(", ")}`);
    for (const [p, why] of Object.entries(e.libvirtOnly ?? {})) if (!why || why.startsWith("TODO")) problems.push(`libvirtOnly ${p} has no reason`);
    expect(problems).toEqual([]);
  });
});

describe("our generator over the corpus", () => {
  it.each(files)("%s", (file) => {
    const e = manifest[file]!;
    const out = outcomeOf(file); // a crash (anything but a refusal) throws here and fails the test
    if (UPDATE) return;
    expect(outcomeProblems(e, out)).toEqual([]);
  });

  // Runs after the per-file tests (vitest runs a file's tests in order), so every outcome is built.
  it.skipIf(!fs.existsSync(PARSER) || !fs.existsSync(FEATURES))("every accepted guest's .files compiles with the real apparmor_parser", async () => {
    const accepted = files.filter((f) => outcomes.get(f)?.outcome === "ok");
    expect(accepted.length).toBe(files.filter((f) => manifest[f]!.outcome === "ok").length);
    // One parser run for all of them: one profile per guest.
    const text = accepted.map((f, i) => `profile corpus-${i} {\n${(outcomes.get(f) as { rules: string[] }).rules.join("\n")}\n}\n`).join("");
    const result = await compileProfile(text);
    expect(result.stderr).toBe("");
    expect(result.ok).toBe(true);
  });
});

// ---- the oracle ----------------------------------------------------------------------------------

const helper = libvirtHelper();
const libvirt = new Map<string, LibvirtOutcome>();
let oracleMs = 0;

/** What libvirt's helper writes for every guest, and how ours stands to it. */
function runtimeRules(name: string): { re: RegExp; why: string; instance?: string; absent?: string }[] {
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return [
    {
      // With qemu.conf's stdio_handler = "logd" (libvirt's default, which the corpus host keeps)
      // QEMU's stdout/stderr is virtlogd's pipe: ours grants no log (src/rules/runtime.ts).
      re: new RegExp(`^/var/log/libvirt/\\*\\*/${n}\\.log$`),
      why: "ours: none under stdio_handler logd (virtlogd writes the log), the exact log under \"file\"",
      absent: `/var/log/libvirt/qemu/${name}.log`,
    },
    { re: new RegExp(`^/run/libvirt/\\*\\*/${n}\\.pid$`), why: "ours: the exact pid file", instance: `/run/libvirt/qemu/${name}.pid` },
    {
      re: new RegExp(`^/var/lib/libvirt/qemu/domain-${n}/monitor\\.sock$`),
      why: "the monitor path of older libvirt (domain-<name>, no id); libvirt 9.0's monitor is in the private dir domain-<id>-<name>, which ours grants",
    },
    {
      re: new RegExp(`^/run/libvirt/\\*\\*/\\*\\.tunnelmigrate\\.dest\\.${n}$`),
      why: "the unix socket old libvirt's tunnelled migration used (qemu.tunnelmigrate.*); not created by libvirt 9.0's QEMU driver",
    },
  ];
}

/**
 * libvirt's dry runs (-d: they print what they would write and write nothing), three at a time,
 * started when the file loads so that they overlap our generator's tests.
 */
const oracleRuns: Promise<void> = (async () => {
  if (helper === undefined) return;
  const t0 = performance.now();
  // A guest the manifest says ours refuses is not compared: no dry run for it (unless its
  // oracleSkip is to be checked); the test runs one itself if ours accepts it after all.
  const queue = files.filter((f) => manifest[f]!.outcome === "ok" || manifest[f]!.oracleSkip !== undefined);
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const xml = readDomain(file);
      const uuid = /<uuid>([^<]*)<\/uuid>/.exec(xml)?.[1] ?? "";
      libvirt.set(file, await runLibvirt(helper, xml, uuid));
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  oracleMs = performance.now() - t0;
})();

interface OracleStats {
  libvirtRules: number;
  covered: number;
  runtime: number;
  libvirtOnly: number;
  oursOnly: number;
}
const stats: OracleStats = { libvirtRules: 0, covered: 0, runtime: 0, libvirtOnly: 0, oursOnly: 0 };

describe.skipIf(helper === undefined)("libvirt 9.0's virt-aa-helper as the oracle", () => {
  beforeAll(async () => {
    await oracleRuns;
  }, 180_000);

  afterAll(() => {
    if (stats.libvirtRules > 0) {
      console.log(
        `corpus oracle (${libvirt.size} dry runs of ${helper} in ${Math.round(oracleMs)} ms): libvirt 9.0 granted ${stats.libvirtRules} rules over the compared entries: ${stats.covered} covered by ours, ` +
          `${stats.runtime} its per-guest runtime patterns, ${stats.libvirtOnly} listed as not granted on purpose or pending; ` +
          `ours granted ${stats.oursOnly} rules libvirt does not`,
      );
    }
  });

  it.each(files)("%s", async (file) => {
    const e = manifest[file]!;
    const ours = outcomeOf(file);
    if (ours.outcome !== "ok" && e.oracleSkip === undefined) return; // a refused guest gets no rules to compare (its `why` or `pending` says why)
    const xml = readDomain(file);
    const lv = libvirt.get(file) ?? (await runLibvirt(helper!, xml, /<uuid>([^<]*)<\/uuid>/.exec(xml)?.[1] ?? ""));
    if (e.oracleSkip !== undefined) {
      // The skip says libvirt 9.0 does not take this XML: it must still not.
      expect(lv.ok, `oracleSkip "${e.oracleSkip}" but libvirt's helper now takes the XML`).toBe(false);
      return;
    }
    expect(lv.ok ? "ok" : lv.error, "libvirt's helper refused the XML: add oracleSkip with the reason").toBe("ok");
    if (!lv.ok || ours.outcome !== "ok") return;
    const name = /<name>([^<]*)<\/name>/.exec(xml)?.[1] ?? "";
    const runtime = runtimeRules(name);
    const uncovered: string[] = [];
    for (const r of lv.rules) {
      stats.libvirtRules++;
      const rt = runtime.find((x) => x.re.test(r.path));
      if (rt) {
        stats.runtime++;
        if (rt.instance !== undefined) expect(covers(ours.paths, rt.instance), `${rt.instance} (${rt.why})`).toBe(true);
        if (rt.absent !== undefined) expect(covers(ours.paths, rt.absent), `${rt.absent} granted (${rt.why})`).toBe(false);
        continue;
      }
      if (covers(ours.paths, r.path)) stats.covered++;
      else if (!uncovered.includes(r.path)) uncovered.push(r.path);
    }
    stats.libvirtOnly += uncovered.length;
    stats.oursOnly += ours.paths.filter((o) => !lv.rules.some((r) => covers([o], r.path) || r.path === o.path + o.suffix)).length;
    if (UPDATE) {
      const listed = { ...(e.libvirtOnly ?? {}) };
      for (const p of uncovered) listed[p] ??= "TODO: why ours does not grant it";
      for (const p of Object.keys(listed)) if (!uncovered.includes(p)) delete listed[p];
      updated.set(file, { ...updated.get(file), libvirtOnly: Object.keys(listed).length ? listed : undefined });
      return;
    }
    // Exact both ways: a path ours now grants must leave the list (a pending one: flip it).
    expect(oracleProblems(e, uncovered)).toEqual([]);
  });
});

// ---- CORPUS_UPDATE -------------------------------------------------------------------------------

const updated = new Map<string, Partial<Expectation>>();

function writeUpdatedManifest(): void {
  const file = path.join(CORPUS_DIR, "expected.json");
  const raw = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, Expectation>;
  for (const f of files) {
    const e = raw[f] ?? ({ kind: "TODO", outcome: "ok" } as Expectation);
    const out = outcomes.get(f);
    if (out) {
      e.outcome = out.outcome;
      if (out.outcome === "refused") {
        e.error = out.error;
        delete e.rules;
      } else {
        delete e.error;
        e.rules = out.rules;
      }
    }
    const u = updated.get(f);
    if (u && "libvirtOnly" in u) {
      if (u.libvirtOnly) e.libvirtOnly = u.libvirtOnly;
      else delete e.libvirtOnly;
    }
    raw[f] = e;
  }
  fs.writeFileSync(file, JSON.stringify(raw, null, 2) + "\n");
}
