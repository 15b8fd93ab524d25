/**
 * Crash safety: `prepare` killed with SIGKILL at random points, hundreds of times.
 *
 * The hook runs as libvirtd runs it (node on the bundle with the launcher's arguments, the XML on
 * stdin, LC_ALL=C), spawned directly so the kill certainly hits node (hooks/qemu execs node, so
 * its pid would be node's too, but a launcher that forked would leave node running). Half of the
 * kills hit node alone (its apparmor_parser child lives on as an orphan and may finish its
 * compile, cache write and load: the nastiest case), half the whole process group (node and
 * parser die together, like a host crash).
 *
 * After every kill:
 * - each guest's `.files` is absent (never committed yet) or byte-equal to the version that was on
 *   disk before or to the version being written, and that version compiles;
 * - the admin's per-guest profile is byte-identical; a profile created from the template is absent
 *   or complete;
 * - only dot-named leftovers (staging dirs, state temp files) may remain, which the parser skips,
 *   and the state record, if present, is complete JSON;
 * - the next uninterrupted `prepare` succeeds within the lock timeout (a lock left by the killed
 *   hook is taken over), removes the leftovers, and what it loads into the (fake) kernel is
 *   exactly the compiled form of the `.files` now on disk, never a staged compile the killed hook
 *   left in the parser cache. (When a kill left nothing at all behind, no lock, no staging dir,
 *   no temp file, the next iteration's prepare is that next prepare.)
 *
 * A left lock is taken over once its mtime is older than the stale time (5 s, src/store/lock.ts).
 * The first left lock is recovered in real time; for the others the test ages the lock's mtime
 * instead of sleeping 5 s each (after waiting for the killed hook's orphaned parser, which would
 * long have finished in those 5 s). Nothing in the product is mocked.
 *
 * VAAH_CRASH_SEED=<n> replays a run; VAAH_CRASH_KILLS=<n> changes the number of kills (default 200).
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FEATURES, PARSER, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE } from "../lifecycle/harness.js";
import {
  adminProfile,
  CACHE_DIR,
  callHookAsync,
  expectedFiles,
  expectedProfile,
  guest,
  hookRoot,
  LIBVIRT_DIR,
  readOrUndef,
  REPLACE,
  sha256,
  STATE_DIR,
  uuidFor,
  versionXml,
  type Guest,
} from "./faults-kit.js";
import { TEST_NODE } from "../helpers/node.js";

const SEED = process.env.VAAH_CRASH_SEED ? Number(process.env.VAAH_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
const KILLS = process.env.VAAH_CRASH_KILLS ? Number(process.env.VAAH_CRASH_KILLS) : 200;
const VERSIONS = 5;
const LOCK_TIMEOUT_MS = 30_000; // the default lock_timeout

/** mulberry32: small, seeded, good enough to spread kill points. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Subject {
  /** Each guest has its own root: its own fake securityfs to read what was loaded. */
  t: TestRoot;
  g: Guest;
  /** The admin wrote the profile (must stay byte-identical) or the hook creates it from the template. */
  admin: boolean;
  xml: string[];
  files: string[];
  /** What the parser loads for each version (the fake securityfs's .replace after a load). */
  blob: Buffer[];
  profileBytes: string;
  /** Mean duration (ms) of an uninterrupted prepare that writes a new version. */
  prepareMs: number;
  /** Index of the version on disk, or -1 when there is no .files. */
  onDisk: number;
}

const subjects: Subject[] = [];

function spawnHook(s: Subject, xml: string): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; stderr: string }> } {
  const t0 = performance.now();
  // What hooks/qemu execs: node BUNDLE hook --root ROOT -- NAME OP SUBOP EXTRA
  const child = spawn(TEST_NODE, [BUNDLE, "hook", "--root", s.t.root, "--", s.g.name, "prepare", "begin", "-"], {
    env: { LC_ALL: "C" },
    cwd: "/",
    detached: true, // its own process group, so the group can be killed with its parser
    stdio: ["pipe", "ignore", "pipe"],
  });
  const err: Buffer[] = [];
  child.stderr!.on("data", (d: Buffer) => err.push(d));
  child.stdin!.on("error", () => {});
  child.stdin!.end(xml);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, ms: performance.now() - t0, stderr: Buffer.concat(err).toString() })),
  );
  return { child, done };
}

/** apparmor_parser processes still working on this guest's profile (orphans of a killed hook). */
function parserPids(t: TestRoot, g: Guest): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmd.startsWith(PARSER) && cmd.includes(t.root) && cmd.includes(g.profileName)) pids.push(Number(e));
  }
  return pids;
}

async function waitForOrphans(t: TestRoot, g: Guest): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (parserPids(t, g).length > 0) {
    if (Date.now() > deadline) throw new Error(`orphaned apparmor_parser for ${g.profileName} still running after 20 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const compiledOnDisk = new Set<string>();
/** The profile as it is on disk compiles (checked once per distinct .files version). */
function assertCompiles(s: Subject, version: number): void {
  const key = `${s.g.uuid}:${version}`;
  if (compiledOnDisk.has(key)) return;
  const t = s.t;
  execFileSync(PARSER, ["-Q", "-K", "-M", t.at(FEATURES), "--base", t.at("/etc/apparmor.d"), t.at(s.g.profile)], { stdio: "pipe", env: { LC_ALL: "C" } });
  compiledOnDisk.add(key);
}

const stagePattern = (g: Guest) => new RegExp(`^\\.virt-aa-hook-stage-${g.uuid}-\\d+-[0-9a-f]{8}$`);
const stateTempPattern = (g: Guest) => new RegExp(`^\\.${g.uuid}\\.json\\.tmp-\\d+-[0-9a-f]{12}$`);

interface Leftovers {
  lock: boolean;
  stages: number;
  stateTemps: number;
}

/** The invariants that hold right after a kill, before anything recovers. */
function assertIntact(s: Subject, writing: number): Leftovers {
  const t = s.t;
  const files = readOrUndef(t, s.g.files);
  if (files === undefined) {
    expect(s.onDisk, `${s.g.name}: .files vanished`).toBe(-1);
  } else {
    const v = s.files.indexOf(files.toString("utf8"));
    expect(v, `${s.g.name}: .files is not a complete known version:\n${files.toString("utf8")}`).toBeGreaterThanOrEqual(0);
    expect([s.onDisk, writing], `${s.g.name}: .files is version ${v}, neither the earlier ${s.onDisk} nor the one written ${writing}`).toContain(v);
    s.onDisk = v;
  }
  const profile = readOrUndef(t, s.g.profile)?.toString("utf8");
  if (s.admin) expect(profile, "the admin's profile changed").toBe(s.profileBytes);
  else if (profile !== undefined) expect(profile).toBe(s.profileBytes);
  // A first prepare renames the .files into place, then the new profile: a kill in between
  // leaves a .files without its profile, which the next prepare completes.
  if (files !== undefined && profile === undefined) expect(s.admin).toBe(false);
  if (files !== undefined && profile !== undefined) assertCompiles(s, s.onDisk);

  const mine = [s.g.profile, s.g.files].map((p) => p.slice(LIBVIRT_DIR.length + 1));
  let stages = 0;
  for (const e of fs.readdirSync(t.at(LIBVIRT_DIR))) {
    if (stagePattern(s.g).test(e)) stages++;
    else if (!mine.includes(e) && e !== "TEMPLATE.qemu") {
      throw new Error(`unexpected entry in ${LIBVIRT_DIR}: ${e}`);
    }
  }
  let stateTemps = 0;
  for (const e of fs.readdirSync(t.at(STATE_DIR))) {
    if (stateTempPattern(s.g).test(e)) stateTemps++;
    else if (e === `${s.g.uuid}.json`) JSON.parse(fs.readFileSync(t.at(`${STATE_DIR}/${e}`), "utf8")); // complete
    else throw new Error(`unexpected entry in ${STATE_DIR}: ${e}`);
  }
  return { lock: fs.existsSync(t.at(s.g.lock)), stages, stateTemps };
}

/** An uninterrupted prepare after a kill: succeeds in bounded time and loads exactly what is on disk. */
async function recover(s: Subject, version: number, ageLock: boolean): Promise<number> {
  const t = s.t;
  if (ageLock && fs.existsSync(t.at(s.g.lock))) {
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(t.at(s.g.lock), past, past);
  }
  fs.writeFileSync(t.at(REPLACE), "");
  const r = await callHookAsync(t, [s.g.name, "prepare", "begin", "-"], s.xml[version]!, LOCK_TIMEOUT_MS + 10_000);
  expect({ status: r.status, stderr: r.stderr }, `recovery prepare of ${s.g.name} v${version}`).toEqual({ status: 0, stderr: "" });
  expect(r.ms).toBeLessThan(LOCK_TIMEOUT_MS);
  expect(t.read(s.g.files)).toBe(s.files[version]);
  s.onDisk = version;
  expect(t.read(s.g.profile)).toBe(s.profileBytes);
  const state = JSON.parse(t.read(s.g.state));
  expect(state.filesSha256).toBe(sha256(s.files[version]!));
  // What reached the kernel is the compiled .files now on disk.
  const loaded = fs.readFileSync(t.at(REPLACE));
  expect(loaded.equals(s.blob[version]!), `${s.g.name}: the loaded policy is not version ${version}'s`).toBe(true);
  const left = fs.readdirSync(t.at(LIBVIRT_DIR)).filter((e) => stagePattern(s.g).test(e));
  expect(left).toEqual([]);
  expect(fs.readdirSync(t.at(STATE_DIR)).filter((e) => stateTempPattern(s.g).test(e))).toEqual([]);
  expect(fs.existsSync(t.at(s.g.lock))).toBe(false);
  return r.ms;
}

beforeAll(async () => {
  for (const [i, admin] of [true, false].entries()) {
    const t = hookRoot("vaah-crash-");
    const g = guest(admin ? "adm" : "tpl", uuidFor("crash", i));
    if (admin) fs.writeFileSync(t.at(g.profile), adminProfile(g));
    const xml = Array.from({ length: VERSIONS }, (_, v) => versionXml(t, g, v));
    const s: Subject = { t, g, admin, xml, files: xml.map((x) => expectedFiles(t, x)), blob: [], profileBytes: "", prepareMs: 0, onDisk: -1 };
    expect(new Set(s.files).size).toBe(VERSIONS);
    // Every version once, uninterrupted: proves it loads, records its compiled form, times it.
    let total = 0;
    for (let v = 0; v < VERSIONS; v++) {
      fs.writeFileSync(t.at(REPLACE), "");
      const run = spawnHook(s, xml[v]!);
      const r = await run.done;
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      total += r.ms;
      s.blob.push(fs.readFileSync(t.at(REPLACE)));
      expect(s.blob[v]!.length).toBeGreaterThan(0);
    }
    s.prepareMs = total / VERSIONS;
    s.profileBytes = admin ? adminProfile(g) : expectedProfile(t, g);
    expect(t.read(g.profile)).toBe(s.profileBytes);
    s.onDisk = VERSIONS - 1;
    if (!admin) {
      // Start the template guest from nothing, so kills also hit its very first prepare.
      const r = await callHookAsync(t, [g.name, "release", "end", "-"], xml[0]!);
      expect(r).toMatchObject({ status: 0, stderr: "" });
      expect(readOrUndef(t, g.profile)).toBeUndefined();
      s.onDisk = -1;
    }
    subjects.push(s);
  }
  // The compiled form does not depend on whether it came from a fresh compile or the cache.
  const a = subjects[0]!;
  fs.writeFileSync(a.t.at(REPLACE), "");
  expect((await spawnHook(a, a.xml[VERSIONS - 1]!).done).code).toBe(0);
  expect(fs.readFileSync(a.t.at(REPLACE)).equals(a.blob[VERSIONS - 1]!)).toBe(true);
}, 120_000);

afterAll(() => {
  for (const s of subjects) s.t.remove();
});

describe("crash safety: SIGKILL at random points of prepare", () => {
  it(`${KILLS} kills: .files always a complete version, admin's profile intact, next prepare recovers and loads what is on disk`, async () => {
    console.log(`crash: seed=${SEED} kills=${KILLS} (replay with VAAH_CRASH_SEED=${SEED}); prepare takes ~${subjects.map((s) => `${s.g.name} ${Math.round(s.prepareMs)} ms`).join(", ")}`);
    const started = performance.now();
    const stats = { recoveries: 0, killed: 0, finishedFirst: 0, groupKills: 0, lockLeft: 0, stagesLeft: 0, stateTempsLeft: 0, newVersionOnDisk: 0, realStaleMs: -1 };

    // One loop per guest, both at once (different guests never wait for each other).
    await Promise.all(
      subjects.map(async (s, si) => {
        const rand = prng(SEED + si * 7919);
        // Kill points are spread over the duration of an uninterrupted prepare, estimated from
        // the latest runs that were not killed (the machine's load changes during the test).
        let estimate = s.prepareMs;
        const learn = (ms: number) => (estimate = 0.7 * estimate + 0.3 * ms);
        let kills = 0;
        for (let attempt = 0; kills < KILLS / subjects.length; attempt++) {
          expect(attempt, "too many runs finished before their kill").toBeLessThan(KILLS * 2);
          // Mostly a new version (the write path); sometimes the one on disk (load from cache).
          const same = rand() < 0.15 && s.onDisk >= 0;
          const v = same ? s.onDisk : (Math.max(s.onDisk, 0) + 1 + Math.floor(rand() * (VERSIONS - 1))) % VERSIONS;
          const before = s.onDisk;
          // Mostly inside the part that locks, stages, compiles, renames and records; some anywhere.
          const u = rand();
          const delay = estimate * (u < 0.15 ? u / 0.15 : 0.25 + 0.7 * rand());
          const group = rand() < 0.5;
          const run = spawnHook(s, s.xml[v]!);
          const timer = setTimeout(() => {
            try {
              if (group) process.kill(-run.child.pid!, "SIGKILL");
              else process.kill(run.child.pid!, "SIGKILL");
            } catch {
              // already exited
            }
          }, delay);
          const r = await run.done;
          clearTimeout(timer);
          if (r.signal === "SIGKILL") {
            stats.killed++;
            kills++;
            if (group) stats.groupKills++;
          } else {
            expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
            stats.finishedFirst++;
            learn(r.ms);
          }
          await waitForOrphans(s.t, s.g);

          const left = assertIntact(s, v);
          if (s.onDisk !== before) stats.newVersionOnDisk++;
          if (left.lock) stats.lockLeft++;
          stats.stagesLeft += left.stages;
          stats.stateTempsLeft += left.stateTemps;

          // The next uninterrupted prepare (another version, or the same) must succeed. A run that
          // finished before its kill, or a kill that left nothing behind (before the lock was
          // taken, or after it was released), needs none: the next iteration's prepare starts
          // from a normal state.
          const w = Math.floor(rand() * VERSIONS);
          if (r.signal !== "SIGKILL" || (!left.lock && left.stages === 0 && left.stateTemps === 0)) continue;
          stats.recoveries++;
          if (left.lock && si === 0 && stats.realStaleMs < 0) {
            // Once in real time: the lock of a killed hook is taken over after the stale time.
            stats.realStaleMs = await recover(s, w, false);
            expect(stats.realStaleMs).toBeGreaterThan(2000);
          } else {
            learn(await recover(s, w, true));
          }
        }
      }),
    );
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`crash: seed=${SEED}: ${stats.killed} killed (${stats.groupKills} with their parser), ${stats.finishedFirst} finished before the kill; ${stats.recoveries} recovery prepares; ` +
      `left behind: ${stats.lockLeft} locks, ${stats.stagesLeft} staging dirs, ${stats.stateTempsLeft} state temp files; ` +
      `${stats.newVersionOnDisk} kills after the new .files was in place; real stale-lock takeover ${Math.round(stats.realStaleMs)} ms; ${secs} s`);
    expect(stats.killed).toBe(KILLS);
    // The points that matter were hit: a lock and a staging dir left behind by some kill.
    expect(stats.lockLeft).toBeGreaterThan(0);
    expect(stats.stagesLeft).toBeGreaterThan(0);
  }, 600_000);

  it("a staged compile cached by a killed hook is never loaded for the rules on disk", async () => {
    // Deterministic replay of the worst kill point: the killed hook's parser compiled, cached
    // (-W) and loaded the staged version 1, the hook died before renaming it into place. Its
    // staging dir and cache entry are exactly what that parser leaves (same command line as the
    // hook's). The next prepare of version 0, whose .files is on disk, must load version 0.
    const s = subjects[0]!;
    const t = s.t;
    expect(s.admin).toBe(true);
    fs.writeFileSync(t.at(REPLACE), "");
    await recover(s, 0, false);
    const stage = t.at(`${LIBVIRT_DIR}/.virt-aa-hook-stage-${s.g.uuid}-99999-deadbeef`);
    fs.mkdirSync(`${stage}/libvirt`, { recursive: true });
    fs.writeFileSync(`${stage}/libvirt/${s.g.profileName}.files`, s.files[1]!);
    await new Promise((r) => setTimeout(r, 20)); // the cache must be strictly newer than the .files
    execFileSync(PARSER, ["-r", "-W", "-L", t.at(CACHE_DIR), "-T", "--subdomainfs", t.at("/run/fake-securityfs"), "-M", t.at(FEATURES), "-I", stage, "--base", t.at("/etc/apparmor.d"), t.at(s.g.profile)], { stdio: "pipe", env: { LC_ALL: "C" } });
    expect(fs.readFileSync(t.at(REPLACE)).equals(s.blob[1]!)).toBe(true);
    await recover(s, 0, false);
  });
});
