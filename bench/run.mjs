// The benchmark (issue 8): `npm run bench` (full) or `npm run bench -- --quick` (CI: short, printed,
// never judged). Prints one markdown table; every figure is a median over repeated runs with a
// ratio against a baseline measured in the same run, interleaved with it so that load on the
// machine hits both alike. Exit status 1 only when the bench itself broke (a hook call failed,
// a file is missing), never because of a number. Everything happens in temporary roots.
//
// Options: --quick, --runs N, --guests N, --reboot-guests N, --md FILE (also write the table to FILE).
// What each row means and how the libvirt replay works: docs/performance.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(REPO, "dist/virt-aa-hook.cjs");
const HOOK_SOURCE = path.join(REPO, "hooks/qemu");
const PARSER = "/usr/sbin/apparmor_parser";
const HELPER = "/usr/lib/libvirt/virt-aa-helper";
const SYSTEM_APPARMOR = "/etc/apparmor.d";
const SYSTEM_FEATURES = "/usr/share/apparmor-features/features";
const INCLUDE_DIRS = ["tunables", "abstractions", "abi", "local"];
const FAKE_FS = "/run/fake-securityfs";
const FEATURES = "/usr/share/apparmor-features/features";

// ---------------------------------------------------------------------------------------------
// options

const argv = process.argv.slice(2);
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = argv.includes("--quick");
const RUNS = Number(opt("--runs") ?? (QUICK ? 7 : 21));
const GUESTS = Number(opt("--guests") ?? (QUICK ? 20 : 100));
const SCALE = [1, 100, 1000];
const SCALE_RUNS = QUICK ? 5 : 15;
/** Guests brought up at once after the simulated host reboot, and how many times that is done. */
const REBOOT_GUESTS = Number(opt("--reboot-guests") ?? 50);
const REBOOT_ROUNDS = QUICK ? 1 : 3;
/** The 1,000-disk domain's `prepare`: runs of each kind. */
const BIG_DISKS = 1000;
const BIG_RUNS = QUICK ? 2 : 5;
/** Peak RSS: runs of each measured call (the largest is kept). */
const RSS_RUNS = QUICK ? 3 : 5;
const TIME = "/usr/bin/time";
const MD_OUT = opt("--md");

// ---------------------------------------------------------------------------------------------
// helpers

const work = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-bench-"));
const cleanup = () => fs.rmSync(work, { recursive: true, force: true });
process.on("exit", cleanup);

function median(xs) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One process, timed from spawn to exit; throws if it fails (the bench is broken then). */
function timed(cmd, args, { input, ok = [0], what } = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { input: input ?? "", env: { LC_ALL: "C" }, cwd: "/", timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  const ms = performance.now() - t0;
  if (r.error) throw r.error;
  if (!ok.includes(r.status)) {
    throw new Error(`${what ?? cmd} ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
  }
  return { ms, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

let sharedBase;
/** Read-only copy of the machine's apparmor include dirs, linked into every root. */
function apparmorBase() {
  if (sharedBase) return sharedBase;
  sharedBase = path.join(work, "apparmor-base");
  for (const sub of INCLUDE_DIRS) fs.cpSync(path.join(SYSTEM_APPARMOR, sub), path.join(sharedBase, sub), { recursive: true });
  return sharedBase;
}

/** A root like test/lifecycle/fixture.ts makes, with the in-repo hooks/qemu installed in it. */
function makeRoot(name, config = {}) {
  const root = path.join(work, name);
  const at = (p) => path.join(root, p);
  fs.mkdirSync(at("/etc/apparmor.d/libvirt"), { recursive: true });
  for (const sub of INCLUDE_DIRS) fs.symlinkSync(path.join(apparmorBase(), sub), at(`/etc/apparmor.d/${sub}`));
  fs.copyFileSync(path.join(SYSTEM_APPARMOR, "libvirt/TEMPLATE.qemu"), at("/etc/apparmor.d/libvirt/TEMPLATE.qemu"));
  fs.cpSync(SYSTEM_FEATURES, at(FEATURES), { recursive: true });
  fs.mkdirSync(at(FAKE_FS), { recursive: true });
  fs.writeFileSync(at(`${FAKE_FS}/.replace`), "");
  fs.writeFileSync(at(`${FAKE_FS}/.remove`), "");
  const conf = { subdomainfs: FAKE_FS, features_file: FEATURES, ...config };
  fs.mkdirSync(at("/etc/libvirt/hooks"), { recursive: true });
  fs.writeFileSync(at("/etc/libvirt/virt-aa-hook.conf"), Object.entries(conf).map(([k, v]) => `${k} = "${v}"\n`).join(""));
  // hooks/qemu finds the bundle at ${0%/*}/../dist/virt-aa-hook.cjs and serves the root it sits in.
  fs.copyFileSync(HOOK_SOURCE, at("/etc/libvirt/hooks/qemu"));
  fs.chmodSync(at("/etc/libvirt/hooks/qemu"), 0o755);
  fs.mkdirSync(at("/etc/libvirt/dist"), { recursive: true });
  fs.symlinkSync(BUNDLE, at("/etc/libvirt/dist/virt-aa-hook.cjs"));
  fs.symlinkSync(path.join(path.dirname(BUNDLE), "loader.cjs"), at("/etc/libvirt/dist/loader.cjs"));
  return { root, at, hook: at("/etc/libvirt/hooks/qemu") };
}

function callHook(r, name, op, sub, xml) {
  return timed(r.hook, [name, op, sub, "-"], { input: xml, what: `hook ${name} ${op}` }).ms;
}

/** Disk images, on the real filesystem (virt-aa-helper probes them there) and in a root. */
function makeImage(realPath, qcow2) {
  fs.mkdirSync(path.dirname(realPath), { recursive: true });
  if (qcow2) {
    const r = spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", realPath, "1G"]);
    if (r.status === 0) return true;
  }
  fs.writeFileSync(realPath, "");
  return false;
}

// ---------------------------------------------------------------------------------------------
// the typical guest: examples/basic.xml (a qcow2 disk, a cdrom, a serial log, OVMF loader + nvram,
// a guest-agent channel, a network interface), its images moved into the bench's temp dir

const images = path.join(work, "images");
const QCOW2 = makeImage(path.join(images, "web01.qcow2"), true);
makeImage(path.join(images, "netinst.iso"), false);
let typicalXml = fs
  .readFileSync(path.join(REPO, "examples/basic.xml"), "utf8")
  .replaceAll("/var/lib/libvirt/images/web01.qcow2", `${images}/web01.qcow2`)
  .replaceAll("/var/lib/libvirt/images/debian-12.5.0-amd64-netinst.iso", `${images}/netinst.iso`);
if (!QCOW2) typicalXml = typicalXml.replace("type='qcow2'", "type='raw'");
const NAME = "web01";
const UUID = /<uuid>([^<]+)<\/uuid>/.exec(typicalXml)[1];
const PROFILE = `libvirt-${UUID}`;

/**
 * The typical guest under another UUID (same name, as after undefine and define: the XML names
 * its files after the name): a guest this root has never seen, so its first `prepare` compiles
 * whatever any store holds (a compiled-policy store is keyed by the profile's text, which names
 * the UUID).
 */
function typicalGuest(n) {
  const uuid = UUID.slice(0, -6) + String(n).padStart(6, "0");
  return { name: NAME, uuid, xml: typicalXml.replaceAll(UUID, uuid) };
}

/** Copy the guest's images into a root at the same host path; pid + label files for `started`. */
function populateGuest(r, name = NAME, uuid = UUID) {
  fs.cpSync(images, r.at(images), { recursive: true });
  fakeRunningQemu(r, name, uuid);
}

/** What `started` reads: QEMU's pid file and its AppArmor label, faked in the root. */
function fakeRunningQemu(r, name, uuid) {
  const pid = 4242;
  fs.mkdirSync(r.at("/run/libvirt/qemu"), { recursive: true });
  fs.writeFileSync(r.at(`/run/libvirt/qemu/${name}.pid`), `${pid}\n`);
  fs.mkdirSync(r.at(`/proc/${pid}/attr/apparmor`), { recursive: true });
  fs.writeFileSync(r.at(`/proc/${pid}/attr/apparmor/current`), `libvirt-${uuid} (enforce)\n`);
}

// ---------------------------------------------------------------------------------------------
// libvirt's AppArmor driver, replayed (docs/performance.md, "The replay")

const HAVE_HELPER = fs.existsSync(HELPER);
const HAVE_PARSER = fs.existsSync(PARSER);
// Paths qemuProcessPrepareHost / the master key labelling hand to AppArmorSetPathLabel, each one a
// `virt-aa-helper -r -u NAME -F PATH` (directories with the subtree glob the driver appends).
const EXTRA_PATHS = [
  "/var/lib/libvirt/qemu/domain-3-web01/{,**}",
  "/var/lib/libvirt/qemu/channel/target/domain-3-web01/{,**}",
  "/var/lib/libvirt/qemu/domain-3-web01/master-key.aes",
];

/** The rules virt-aa-helper --dryrun prints for the .files (on stderr, after the file name). */
function dryRunFiles(stderr) {
  const m = /virt-aa-helper:\n[^\n]*\.files\nvirt-aa-helper:\n([\s\S]*?)(?:\nvirt-aa-helper:\n|$)/.exec(stderr);
  if (!m) throw new Error(`cannot find the .files in virt-aa-helper's dry run:\n${stderr}`);
  return m[1].endsWith("\n") ? m[1] : m[1] + "\n";
}

let replayRoot;
function replayStart(xml) {
  if (!replayRoot) replayRoot = makeRoot("replay");
  const r = replayRoot;
  const dir = r.at("/etc/apparmor.d/libvirt");
  const profile = path.join(dir, PROFILE);
  const files = `${profile}.files`;
  fs.rmSync(profile, { force: true });
  fs.rmSync(files, { force: true });
  const parserArgs = ["-r", "-T", "--subdomainfs", r.at(FAKE_FS), "-M", r.at(FEATURES), "--base", r.at("/etc/apparmor.d"), profile];
  let ms = 0;
  // create: virt-aa-helper -c, which writes profile + .files and runs apparmor_parser on them
  const c = timed(HELPER, ["-d", "-c", "-u", PROFILE], { input: xml, what: "virt-aa-helper -c" });
  ms += c.ms;
  const template = fs.readFileSync(path.join(dir, "TEMPLATE.qemu"), "utf8");
  fs.writeFileSync(profile, template.replace("LIBVIRT_TEMPLATE", PROFILE).replace("{\n", `{\n  #include <libvirt/${PROFILE}.files>\n`));
  fs.writeFileSync(files, dryRunFiles(c.stderr));
  ms += timed(PARSER, parserArgs, { what: "apparmor_parser (replay)" }).ms;
  // one replace per extra path: virt-aa-helper -r -F PATH appends it, apparmor_parser -r reloads
  for (const p of EXTRA_PATHS) {
    const h = timed(HELPER, ["-d", "-r", "-u", PROFILE, "-F", p], { input: xml, what: "virt-aa-helper -r -F" });
    ms += h.ms;
    fs.appendFileSync(files, dryRunFiles(h.stderr));
    ms += timed(PARSER, parserArgs, { what: "apparmor_parser (replay)" }).ms;
  }
  return ms;
}

// ---------------------------------------------------------------------------------------------
// 1. per operation, 2. whole start / restart

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "?";
  return { cpu: cpu.trim(), cores: os.cpus().length, load: os.loadavg().map((x) => x.toFixed(2)).join(" ") };
}

function lifecycle() {
  const main = makeRoot("ops");
  populateGuest(main);
  // The same hook with apparmor_parser replaced by /bin/true: what prepare costs without the parser.
  // The store is on as in every root: /bin/true writes no compiled policy, so each prepare falls
  // back to the parser path (store-load.ts), which /bin/true also does nothing for.
  const noParser = makeRoot("noparser", { parser: "/bin/true" });
  populateGuest(noParser);
  const t = {
    node: [], ignored: [], prepareCold: [], prepareUnchanged: [], start: [], started: [], stopped: [], release: [],
    prepareNoParser: [], prepareNoParserUnchanged: [], fullStart: [], restart: [], restartReleased: [], prepareReleased: [],
    restartNewId: [], driver: [],
  };
  for (let i = -1; i < RUNS; i++) {
    const row = {};
    // A new guest each iteration: its first start compiles (nothing compiled for it anywhere yet).
    const g = typicalGuest(i + 2);
    fakeRunningQemu(main, g.name, g.uuid);
    const call = (op, sub) => callHook(main, g.name, op, sub, g.xml);
    row.node = timed(process.execPath, ["-e", "0"]).ms;
    row.ignored = call("migrate", "begin");
    row.prepareCold = call("prepare", "begin");
    row.start = call("start", "begin");
    row.started = call("started", "begin");
    row.fullStart = row.prepareCold + row.start + row.started;
    row.stopped = call("stopped", "end");
    // restart with the guest's files and parser cache kept (see the notes): prepare, start, started
    row.prepareUnchanged = call("prepare", "begin");
    row.restart = row.prepareUnchanged + call("start", "begin") + call("started", "begin");
    call("stopped", "end");
    row.release = call("release", "end");
    // The real restart of the unchanged guest: libvirt ran stopped + release when it shut down;
    // now prepare, start, started with the same XML.
    row.prepareReleased = call("prepare", "begin");
    row.restartReleased = row.prepareReleased + call("start", "begin") + call("started", "begin");
    call("stopped", "end");
    call("release", "end");
    // The same restart as libvirt numbers it: a new <domain id> at every start, and the private
    // and channel directories (domain-<id>-<name>) in the rules change with it.
    const oldId = /<domain type='kvm' id='(\d+)'>/.exec(g.xml)[1];
    const newId = String(i + 100);
    const renumbered = g.xml.replace(`<domain type='kvm' id='${oldId}'>`, `<domain type='kvm' id='${newId}'>`).replaceAll(`domain-${oldId}-`, `domain-${newId}-`);
    const callNew = (op, sub) => callHook(main, g.name, op, sub, renumbered);
    row.restartNewId = callNew("prepare", "begin") + callNew("start", "begin") + callNew("started", "begin");
    callNew("stopped", "end");
    callNew("release", "end");
    row.prepareNoParser = callHook(noParser, NAME, "prepare", "begin", typicalXml);
    row.prepareNoParserUnchanged = callHook(noParser, NAME, "prepare", "begin", typicalXml);
    callHook(noParser, NAME, "release", "end", typicalXml);
    if (HAVE_HELPER) row.driver = replayStart(typicalXml);
    if (i < 0) continue; // warm-up: page cache, first compile of the bundle
    for (const [k, v] of Object.entries(row)) t[k].push(v);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// 3. scale: derivation in-process, and many guests' prepare at once

async function buildDeriveBundle() {
  const { build } = await import("esbuild");
  const out = path.join(REPO, ".cache/bench/derive.cjs");
  await build({
    entryPoints: [path.join(REPO, "bench/derive.ts")],
    outfile: out,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    logLevel: "warning",
    define: { "import.meta.url": "__bundleUrl" },
    banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  return out;
}

async function scale() {
  const bundle = await buildDeriveBundle();
  const root = path.join(work, "scale");
  fs.mkdirSync(root, { recursive: true });
  const out = [];
  for (const n of SCALE) {
    const r = timed(process.execPath, [bundle, root, String(n), String(SCALE_RUNS)], { what: "bench/derive" });
    out.push(JSON.parse(r.stdout));
  }
  return out;
}

/** Guest `g<i>` with `disks` raw disks, `/var/lib/libvirt/images/g<i>[-<n>].img` (made by `makeDisks`). */
function smallGuestXml(i, disks = 1) {
  const uuid = `5c0ffee0-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const name = `g${i}`;
  const diskXml = diskFiles(name, disks).map(
    (f, n) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${f}'/>
      <target dev='vd${n}' bus='virtio'/>
    </disk>`,
  );
  return {
    name,
    uuid,
    disks: diskFiles(name, disks),
    xml: `<domain type='kvm'>
  <name>${name}</name>
  <uuid>${uuid}</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${diskXml.join("\n")}
  </devices>
</domain>
`,
  };
}

function diskFiles(name, disks) {
  if (disks === 1) return [`/var/lib/libvirt/images/${name}.img`];
  return Array.from({ length: disks }, (_, n) => `/var/lib/libvirt/images/${name}-${n}.img`);
}

function makeDisks(r, guest) {
  fs.mkdirSync(r.at("/var/lib/libvirt/images"), { recursive: true });
  for (const f of guest.disks) fs.writeFileSync(r.at(f), "");
}

function runAsync(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { env: { LC_ALL: "C" }, cwd: "/", stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    c.stderr.on("data", (d) => (err += d));
    c.on("error", reject);
    c.on("close", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}\n${err}`))));
    c.stdin.end(input ?? "");
  });
}

async function concurrent() {
  const r = makeRoot("many");
  const guests = Array.from({ length: GUESTS }, (_, i) => smallGuestXml(i));
  for (const g of guests) makeDisks(r, g);
  let t0 = performance.now();
  const nodes = await Promise.all(guests.map(() => runAsync(process.execPath, ["-e", "0"])));
  const nodeWall = performance.now() - t0;
  t0 = performance.now();
  const each = await Promise.all(guests.map((g) => runAsync(r.hook, [g.name, "prepare", "begin", "-"], g.xml)));
  const wall = performance.now() - t0;
  await Promise.all(guests.map((g) => runAsync(r.hook, [g.name, "release", "end", "-"], g.xml)));
  return { wall, slowest: Math.max(...each), median: median(each), nodeWall, nodeSlowest: Math.max(...nodes) };
}

/** Run `job` on every item, `width` at a time. */
async function pool(items, width, job) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await job(items[next++]);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/**
 * REBOOT_GUESTS guests' `prepare` at once after a host reboot, with everything that survives a
 * reboot warm: each guest was started once and shut down cleanly before (prepare … release, as
 * libvirt-guests' shutdown leads to), so whatever the hook keeps on disk for a guest that stopped
 * (profiles, parser cache, compiled-policy store) is there. The reboot: /run is a tmpfs (the
 * hook's locks, libvirt's pid files) and the kernel has nothing loaded, so /run is emptied and
 * the fake securityfs made afresh. Then every guest's `prepare` starts at the same time, against
 * REBOOT_GUESTS × `node -e 0` started at the same time, interleaved round by round.
 */
async function afterReboot() {
  const r = makeRoot("reboot");
  const guests = Array.from({ length: REBOOT_GUESTS }, (_, i) => smallGuestXml(500 + i));
  for (const g of guests) makeDisks(r, g);
  const hook = (g, op, sub) => runAsync(r.hook, [g.name, op, sub, "-"], g.xml);
  const shutdown = () => pool(guests, 2, (g) => hook(g, "release", "end"));
  await pool(guests, 2, async (g) => {
    await hook(g, "prepare", "begin");
    await hook(g, "stopped", "end");
  });
  const out = { wall: [], nodeWall: [], slowest: [], nodeSlowest: [] };
  for (let round = 0; round < REBOOT_ROUNDS; round++) {
    await shutdown();
    fs.rmSync(r.at("/run"), { recursive: true, force: true });
    fs.mkdirSync(r.at(FAKE_FS), { recursive: true });
    fs.writeFileSync(r.at(`${FAKE_FS}/.replace`), "");
    fs.writeFileSync(r.at(`${FAKE_FS}/.remove`), "");
    let t0 = performance.now();
    const nodes = await Promise.all(guests.map(() => runAsync(process.execPath, ["-e", "0"])));
    out.nodeWall.push(performance.now() - t0);
    out.nodeSlowest.push(Math.max(...nodes));
    t0 = performance.now();
    const each = await Promise.all(guests.map((g) => hook(g, "prepare", "begin")));
    out.wall.push(performance.now() - t0);
    out.slowest.push(Math.max(...each));
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)]));
}

/**
 * A domain with BIG_DISKS raw disks through the real hook: its first `prepare` (compile of a
 * profile with ~1,000 rules; a new UUID each run so nothing compiled is reused) and an unchanged
 * one, each against `node -e 0` interleaved with it.
 */
function bigDomain() {
  const r = makeRoot("big");
  const t = { node: [], cold: [], unchanged: [] };
  for (let i = 0; i < BIG_RUNS; i++) {
    const g = smallGuestXml(900 + i, BIG_DISKS);
    makeDisks(r, g);
    t.node.push(timed(process.execPath, ["-e", "0"]).ms);
    t.cold.push(callHook(r, g.name, "prepare", "begin", g.xml));
    t.unchanged.push(callHook(r, g.name, "prepare", "begin", g.xml));
    callHook(r, g.name, "release", "end", g.xml);
  }
  return { node: median(t.node), cold: median(t.cold), unchanged: median(t.unchanged), runs: BIG_RUNS };
}

/**
 * Peak resident set (MiB) of one call: GNU time's %M, the largest process it waited for (the hook's
 * node; on a compile the parser is measured too, and is smaller). Undefined when /usr/bin/time is
 * not installed.
 */
function rssOf(cmd, args, input) {
  if (!fs.existsSync(TIME)) return undefined;
  const out = path.join(work, "rss.out");
  timed(TIME, ["-f", "%M", "-o", out, cmd, ...args], { input, what: `${TIME} ${cmd}` });
  return Number(fs.readFileSync(out, "utf8").trim().split("\n").at(-1)) / 1024;
}

/** The largest peak RSS of RSS_RUNS runs of each call. */
function memory() {
  const r = makeRoot("memory");
  populateGuest(r);
  const big = smallGuestXml(990, BIG_DISKS);
  makeDisks(r, big);
  const runs = (fn) => Math.max(...Array.from({ length: RSS_RUNS }, (_, i) => fn(i)));
  const hook = (g, op, sub) => runs(() => rssOf(r.hook, [g.name, op, sub, "-"], g.xml));
  const typical = { name: NAME, xml: typicalXml };
  const out = { node: runs(() => rssOf(process.execPath, ["-e", "0"])) };
  out.ignored = hook(typical, "migrate", "begin");
  // A guest never seen before on each run, so every run compiles; released after (it shares the
  // typical guest's disk).
  out.prepareCold = runs((i) => {
    const g = typicalGuest(800 + i);
    const mib = rssOf(r.hook, [g.name, "prepare", "begin", "-"], g.xml);
    callHook(r, g.name, "release", "end", g.xml);
    return mib;
  });
  callHook(r, NAME, "prepare", "begin", typicalXml);
  out.prepareUnchanged = hook(typical, "prepare", "begin");
  out.started = hook(typical, "started", "begin");
  callHook(r, big.name, "prepare", "begin", big.xml);
  out.bigUnchanged = hook(big, "prepare", "begin");
  return out;
}

// ---------------------------------------------------------------------------------------------
// the table

/** Run one part of the bench, saying on stderr how long it took (the --quick budget is 60 s). */
async function phase(name, fn) {
  const t0 = performance.now();
  const out = await fn();
  process.stderr.write(`bench: ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return out;
}

const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");

async function main() {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build`);
  if (!HAVE_PARSER) throw new Error(`${PARSER} is missing: the bench needs Debian's apparmor package`);
  const m0 = machine();
  const started = new Date();
  const t = await phase("lifecycle", lifecycle);
  const sc = await phase("scale", scale);
  const many = await phase("concurrent", concurrent);
  const reboot = await phase("reboot", afterReboot);
  const big = await phase("1,000 disks", bigDomain);
  const rss = await phase("peak RSS", memory);
  const m1 = machine();
  const med = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const n = t.node.length;
  const rows = [];
  const verdict = (value, target) => (target === undefined ? "" : Number.isFinite(value) ? (value <= target ? "✓" : "✗") : "–");
  const row = (what, ms, runs, base, baseMs, target) => {
    const ratio = baseMs ? ms / baseMs : NaN;
    rows.push(`| ${what} | ${fmt(ms)} | ${runs} | ${base} | ${fmt(baseMs)} | ${baseMs ? fmt(ratio, 2) + "×" : "–"} | ${target === undefined ? "" : `≤ ${+target.toFixed(2)}×`} | ${verdict(ratio, target)} |`);
  };
  // Peak RSS rows: the figure is MiB (not ms), the target an absolute size; the ratio is to `node -e 0`'s.
  const rssRow = (what, mib, target) => {
    const ratio = mib / rss.node;
    rows.push(`| ${what} | ${fmt(mib)} MiB | ${RSS_RUNS} | \`node -e 0\` | ${fmt(rss.node)} MiB | ${Number.isFinite(ratio) ? fmt(ratio, 2) + "×" : "–"} | ${target === undefined ? "" : `≤ ${target} MiB`} | ${verdict(mib, target)} |`);
  };
  const node = med.node;
  row("`migrate begin` (ignored operation)", med.ignored, n, "`node -e 0`", node, 1.15);
  row("`prepare`, first (compile + load)", med.prepareCold, n, "`node -e 0`", node);
  row("`prepare`, unchanged (files kept)", med.prepareUnchanged, n, "`node -e 0`", node, 1.4);
  row("`prepare` after `release` (unchanged guest)", med.prepareReleased, n, "`node -e 0`", node);
  row("`prepare`, first, parser = /bin/true", med.prepareNoParser, n, "`node -e 0`", node);
  row("`prepare`, unchanged, parser = /bin/true", med.prepareNoParserUnchanged, n, "`node -e 0`", node);
  row("`start` (rules unchanged: no reload)", med.start, n, "`node -e 0`", node);
  row("`started` (label check)", med.started, n, "`node -e 0`", node);
  row("`stopped`", med.stopped, n, "`node -e 0`", node);
  row("`release` (unload, remove files)", med.release, n, "`node -e 0`", node);
  const driverNote = HAVE_HELPER ? "libvirt driver (replay)" : "libvirt driver: n/a";
  const driver = HAVE_HELPER ? med.driver : undefined;
  row("first start of a new guest: prepare + start + started", med.fullStart, n, driverNote, driver, 0.45);
  row("restart after stop (stopped + release, then prepare + start + started)", med.restartReleased, n, driverNote, driver, 0.2);
  row("restart after stop with a new `<domain id>` (as libvirt numbers starts)", med.restartNewId, n, driverNote, driver);
  row("restart, files + cache kept (no release between)", med.restart, n, driverNote, driver);
  // Each size against the one before it: linear growth is the ratio of the disk counts (the
  // 1-disk figure is mostly fixed cost, so 1 → 100 grows less than 100×).
  sc.forEach((s, i) => {
    const prev = sc[i - 1];
    const what = `derive + render, ${s.disks.toLocaleString("en")} disk${s.disks === 1 ? "" : "s"} (${s.rules} rules, in-process)`;
    if (!prev) row(what, s.total, s.runs, "", undefined);
    else row(what, s.total, s.runs, `${prev.disks.toLocaleString("en")} disk${prev.disks === 1 ? "" : "s"}`, prev.total, (1.2 * s.disks) / prev.disks);
  });
  const bigLabel = BIG_DISKS.toLocaleString("en");
  row(`\`prepare\`, ${bigLabel}-disk domain, first (compile + load)`, big.cold, big.runs, "`node -e 0`", big.node);
  row(`\`prepare\`, ${bigLabel}-disk domain, unchanged`, big.unchanged, big.runs, "`node -e 0`", big.node);
  row(`${GUESTS} new guests' \`prepare\` at once: total wall`, many.wall, 1, `${GUESTS} × \`node -e 0\` at once`, many.nodeWall);
  row(`${GUESTS} new guests' \`prepare\` at once: slowest`, many.slowest, 1, "slowest `node -e 0`", many.nodeSlowest);
  row(`${REBOOT_GUESTS} guests' \`prepare\` at once after a reboot (store warm): total wall`, reboot.wall, REBOOT_ROUNDS, `${REBOOT_GUESTS} × \`node -e 0\` at once`, reboot.nodeWall, 3);
  row(`${REBOOT_GUESTS} guests' \`prepare\` at once after a reboot: slowest`, reboot.slowest, REBOOT_ROUNDS, "slowest `node -e 0`", reboot.nodeSlowest);
  if (!Number.isFinite(rss.node)) {
    rows.push(`| peak RSS of a hook call | – | | | | | ≤ 64 MiB | – (${TIME} is not installed: apt-get install time) |`);
  } else {
    rssRow("peak RSS: `prepare`, unchanged (typical call)", rss.prepareUnchanged, 64);
    rssRow("peak RSS: `prepare`, first (compile)", rss.prepareCold, 64);
    rssRow("peak RSS: `migrate begin` (ignored)", rss.ignored);
    rssRow("peak RSS: `started`", rss.started);
    rssRow(`peak RSS: \`prepare\`, ${bigLabel}-disk domain, unchanged`, rss.bigUnchanged);
  }

  const lines = [];
  lines.push(`virt-aa-hook bench${QUICK ? " (--quick)" : ""}: ${started.toISOString().replace(/\.\d+Z$/, "Z")}`);
  lines.push(`machine: ${m0.cpu}, ${m0.cores} cores; node ${process.version}; load average ${m0.load} (start), ${m1.load} (end)`);
  const caches = fs.readdirSync(path.dirname(BUNDLE)).filter((f) => f.endsWith(`-${process.version}-${process.arch}.${f.split(".").at(-2)}.v8cache`)).length;
  lines.push(`bundle: ${(fs.statSync(BUNDLE).size / 1024).toFixed(0)} KiB; V8 code caches for this node: ${caches} (made by npm run build; hooks/qemu compiles without them otherwise)`);
  lines.push(`libvirt replay: ${HAVE_HELPER ? `${HELPER} --dryrun + ${PARSER} -r -T (1 create + ${EXTRA_PATHS.length} extra paths = ${EXTRA_PATHS.length + 1} helper runs, ${EXTRA_PATHS.length + 1} compiles)` : `skipped: ${HELPER} is not installed`}`);
  lines.push("");
  lines.push("| measured | median ms | runs | baseline | baseline ms | ratio | target | |");
  lines.push("|---|---:|---:|---|---:|---:|---|---|");
  lines.push(...rows);
  lines.push("");
  lines.push(`Scale phases (ms, median): ${sc.map((s) => `${s.disks} disks: parse ${fmt(s.parse, 2)}, derive ${fmt(s.derive, 2)}, policy ${fmt(s.policy, 2)}, render ${fmt(s.render, 2)} (${s.bytes} bytes, ${fmt((1000 * s.total) / s.disks, 0)} µs per disk)`).join("; ")}.`);
  lines.push(`Concurrent prepare: median per guest ${fmt(many.median)} ms (each a first compile and load of its own profile).`);
  lines.push("Notes: hook rows run hooks/qemu as libvirt does (sh → node on the bundle, XML on stdin, LC_ALL=C only), loading into a fake securityfs via --subdomainfs. Each iteration uses a guest new to the root, so `prepare`, first always compiles; the restart after stop is the real path (libvirt runs stopped and release when a guest shuts down); the reboot rows shut every guest down cleanly (release), empty /run and the fake securityfs, then prepare all at once. Peak RSS is GNU time's %M (largest process waited for), the largest of its runs. The replay omits libvirtd's own work between the helper runs and the file writes virt-aa-helper does (a few small files).");
  const text = lines.join("\n");
  console.log(text);
  if (MD_OUT) fs.writeFileSync(MD_OUT, text + "\n");
}

main().catch((err) => {
  console.error(`bench: broken: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
