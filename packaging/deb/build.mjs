// `npm run deb`: the Debian package virt-aa-hook_<version>_all.deb, from this tree's build
// (npm run build first; the npm script does both). dpkg-deb --build --root-owner-group, no
// debhelper: the package is data plus three maintainer scripts.
//
// The package carries the project's installer and what it installs from, as a source tree in
// /usr/share/virt-aa-hook (dist/, hooks/, install/); postinst runs install/install.sh from there
// with Debian's /usr/bin/node, prerm runs install/uninstall.sh, so the files on the host are
// exactly the ones install.sh makes and records (and uninstall.sh removes). Besides: the man page
// virt-aa-hook(8) from the CLI's --help, bash completion (from the CLI's `completion` command
// when it has one), copyright, changelog.
//
// Environment: VIRT_AA_HOOK_DEB_VERSION (default: package.json's version), VIRT_AA_HOOK_DEB_OUT
// (directory for the .deb, default: the repository).
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { helpOf, manPage } from "./manpage.mjs";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const HERE = path.join(REPO, "packaging/deb");
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
const version = process.env.VIRT_AA_HOOK_DEB_VERSION ?? pkg.version;
if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version)) throw new Error(`version ${version}: not a native Debian version`);
const outDir = path.resolve(process.env.VIRT_AA_HOOK_DEB_OUT ?? REPO);
const bundle = path.join(REPO, "dist/virt-aa-hook.cjs");
if (!fs.existsSync(bundle)) throw new Error(`${bundle}: missing (npm run build)`);

// The commit's date (a rebuild of one commit gives the same page and timestamps).
const git = spawnSync("git", ["log", "-1", "--format=%ct"], { cwd: REPO, encoding: "utf8" });
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? (git.status === 0 ? git.stdout.trim() : Math.floor(Date.now() / 1000)));
const date = new Date(epoch * 1000).toISOString().slice(0, 10);

const stage = path.join(REPO, ".cache/deb", version);
fs.rmSync(stage, { recursive: true, force: true });
const at = (p) => path.join(stage, p);
const put = (p, content, mode = 0o644) => {
  fs.mkdirSync(path.dirname(at(p)), { recursive: true, mode: 0o755 });
  fs.writeFileSync(at(p), content);
  fs.chmodSync(at(p), mode);
};
const copy = (from, to) => {
  const st = fs.statSync(path.join(REPO, from));
  put(to, fs.readFileSync(path.join(REPO, from)), st.mode & 0o111 ? 0o755 : 0o644);
};
const gzip = (text) => zlib.gzipSync(Buffer.from(text), { level: 9 });

// The source tree install.sh installs from (contents.ts SOURCE_FILES, OPTIONAL_SOURCE_FILES, companions).
const SHARE = "/usr/share/virt-aa-hook";
for (const f of fs.readdirSync(path.join(REPO, "dist")).sort()) copy(`dist/${f}`, `${SHARE}/dist/${f}`);
for (const f of ["qemu", "qemu-wrapper", "virt-aa-helper", "network"]) if (fs.existsSync(path.join(REPO, "hooks", f))) copy(`hooks/${f}`, `${SHARE}/hooks/${f}`);
const installFiles = (dir) =>
  fs.readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? installFiles(`${dir}/${e.name}`) : [`${dir}/${e.name}`]));
for (const f of installFiles("install").sort()) copy(f, `${SHARE}/${f}`);
// bootstrap.sh is sourced, never run.
fs.chmodSync(at(`${SHARE}/install/bootstrap.sh`), 0o644);

// The man page, from --help.
const man = manPage({ node: process.execPath, bundle, version, date });
// Every command's help is in the page: one that fails is a broken build, not a shorter page.
if (man.skipped.length > 0) throw new Error(`deb: ${man.skipped.map((s) => `'${s.command} --help' failed (${s.why})`).join("; ")}`);
put("/usr/share/man/man8/virt-aa-hook.8.gz", gzip(man.page));

// Bash completion: yargs' own script from the CLI's `completion` command. SHELL=/bin/bash: yargs
// prints zsh's script when $SHELL names zsh.
const completion = helpOf(process.execPath, bundle, ["completion"], { SHELL: "/bin/bash" });
if (completion.status !== 0 || !completion.stdout.includes("complete -o")) throw new Error(`deb: 'completion' failed: ${completion.stderr.trim() || completion.stdout.slice(0, 200)}`);
put("/usr/share/bash-completion/completions/virt-aa-hook", completion.stdout.replaceAll(bundle, "virt-aa-hook").replaceAll("virt-aa-hook.cjs", "virt-aa-hook"));

// Documentation: copyright (ours and every bundled npm package's licence), changelog.
const doc = "/usr/share/doc/virt-aa-hook";
put(`${doc}/copyright`, copyright());
put(`${doc}/changelog.gz`, gzip(changelog()));

// Control and maintainer scripts.
const installedSize = Math.ceil(dirSize(stage) / 1024);
put(
  "/DEBIAN/control",
  fs
    .readFileSync(path.join(HERE, "control"), "utf8")
    .replace("@VERSION@", version)
    .replace("@INSTALLED_SIZE@", String(installedSize)),
);
for (const s of ["postinst", "prerm", "postrm"]) copy(`packaging/deb/${s}`, `/DEBIAN/${s}`);

// Every timestamp the commit's; directories 0755.
for (const p of walk(stage)) {
  if (fs.lstatSync(p).isDirectory()) fs.chmodSync(p, 0o755);
  fs.utimesSync(p, epoch, epoch);
}
fs.mkdirSync(outDir, { recursive: true });
const deb = path.join(outDir, `virt-aa-hook_${version}_all.deb`);
execFileSync("dpkg-deb", ["--build", "--root-owner-group", "-Zxz", stage, deb], { stdio: ["ignore", "ignore", "inherit"] });
console.log(deb);

function copyright() {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, "node_modules/.package-lock.json"), "utf8")).packages;
  const ours = fs.readFileSync(path.join(HERE, "copyright"), "utf8");
  const bundled = Object.entries(lock)
    .filter(([k, v]) => k !== "" && !v.dev)
    .map(([k, v]) => ({ dir: path.join(REPO, k), name: k.replace(/^.*node_modules\//, ""), version: v.version, license: v.license }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const texts = bundled.map((b) => {
    const file = fs.readdirSync(b.dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
    // Debian ships the long common licences once (Policy 12.5): referred to, not copied.
    const common = `/usr/share/common-licenses/${b.license}`;
    const text = ["Apache-2.0", "GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3", "MPL-2.0"].includes(b.license)
      ? `Licensed under the ${b.license} licence: see ${common}.`
      : file
        ? fs.readFileSync(path.join(b.dir, file), "utf8").trim()
        : `(no licence file shipped; package.json says ${b.license})`;
    return `${b.name} ${b.version} (${b.license}), in ${SHARE}/dist/:\n\n${text}\n`;
  });
  return `${ours}\nThe bundle in ${SHARE}/dist/ contains these npm packages, each under its own licence:\n\n${texts.join("\n----\n\n")}`;
}

/** packaging/deb/changelog, with an entry for this build on top when its version is not the latest entry's. */
function changelog() {
  const text = fs.readFileSync(path.join(HERE, "changelog"), "utf8");
  const latest = /^virt-aa-hook \(([^)]+)\)/.exec(text)?.[1];
  if (latest === version) return text;
  const when = new Date(epoch * 1000).toUTCString().replace("GMT", "+0000");
  const maintainer = /^Maintainer: (.*)$/m.exec(fs.readFileSync(path.join(HERE, "control"), "utf8"))[1];
  return `virt-aa-hook (${version}) unstable; urgency=medium\n\n  * Build of ${version} from the tree of ${latest} (VIRT_AA_HOOK_DEB_VERSION).\n\n -- ${maintainer}  ${when}\n\n${text}`;
}

function walk(dir) {
  return [dir, ...fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))];
}

function dirSize(dir) {
  return walk(dir)
    .filter((p) => !p.includes(`${path.sep}DEBIAN`) && fs.lstatSync(p).isFile())
    .reduce((n, p) => n + fs.statSync(p).size, 0);
}
