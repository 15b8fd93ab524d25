import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const REPO = path.resolve(".");
export const PARSER = "/usr/sbin/apparmor_parser";
export const FEATURES = "/usr/share/apparmor-features/features";

export function tmpdir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vaah-${prefix}-`));
}

export function write(p: string, text: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  fs.chmodSync(p, mode);
}

/**
 * A source tree for install.sh: the repo's install/ and hooks/qemu-wrapper as they are. Pieces
 * other stages build (dist bundle, hooks/qemu launcher, default config) are taken from the repo
 * when present, else replaced by small stand-ins of the same shape, so these tests depend only on
 * the installer's own contract with them.
 */
export function sourceTree(): string {
  const src = tmpdir("src");
  fs.cpSync(path.join(REPO, "install"), path.join(src, "install"), { recursive: true });
  fs.mkdirSync(path.join(src, "hooks"));
  fs.copyFileSync(path.join(REPO, "hooks/qemu-wrapper"), path.join(src, "hooks/qemu-wrapper"));
  const take = (rel: string, standIn: string, mode: number) => {
    const from = path.join(REPO, rel);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(src, rel));
    else write(path.join(src, rel), standIn, mode);
  };
  take("dist/virt-aa-hook.cjs", '"use strict";\n// stand-in bundle\n', 0o644);
  take("hooks/qemu", '#!/bin/sh\nset -eu\nNODE=/usr/bin/node\nBUNDLE=/dev/null\nexec "$NODE" "$BUNDLE" hook "$@"\n', 0o755);
  take("install/virt-aa-hook.conf", '# stand-in config\nmode = "enforce"\nattach = "wrapper"\n', 0o644);
  return src;
}

/** A host root: Debian's real /etc/apparmor.d, two emulators, an empty libvirt config dir. */
export function hostRoot(): string {
  const root = tmpdir("root");
  fs.mkdirSync(path.join(root, "etc"));
  fs.cpSync("/etc/apparmor.d", path.join(root, "etc/apparmor.d"), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  for (const emu of ["qemu-system-x86_64", "qemu-system-i386"]) write(path.join(root, "usr/bin", emu), "#!/bin/sh\n", 0o755);
  write(path.join(root, "usr/bin/qemu-img"), "#!/bin/sh\n", 0o755);
  fs.mkdirSync(path.join(root, "etc/libvirt/qemu"), { recursive: true });
  return root;
}

/**
 * What helper mode needs in a root: libvirt's virt-aa-helper (a stand-in program of a few bytes;
 * only its bytes matter: uninstall must put them back exactly) and a dpkg database with an empty
 * `diversions` file, which the real dpkg-divert works on with --admindir. Returns the helper's bytes.
 */
export function helperRoot(root: string): Buffer {
  const bytes = Buffer.from("#!/bin/sh\n# stand-in for libvirt's virt-aa-helper\nexit 0\n");
  write(path.join(root, "usr/lib/libvirt/virt-aa-helper"), bytes.toString("utf8"), 0o755);
  write(path.join(root, "var/lib/dpkg/diversions"), "");
  return bytes;
}

/**
 * Stand-ins for the launchers other parts of the project build (hooks/virt-aa-helper,
 * hooks/network), shaped like hooks/qemu (NODE= and BUNDLE= lines), put into a source tree when
 * the repository does not have them yet. The repository's own are used when present.
 */
export function addLaunchers(src: string): void {
  for (const [rel, command] of [["hooks/virt-aa-helper", "virt-aa-helper"], ["hooks/network", "network-hook"]] as const) {
    const from = path.join(REPO, rel);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(src, rel));
    else write(path.join(src, rel), `#!/bin/sh\n# stand-in launcher\nNODE=/usr/bin/node\nBUNDLE=\${0%/*}/../dist/virt-aa-hook.cjs\nexec "$NODE" "$BUNDLE" ${command} --root / -- "$@"\n`, 0o755);
  }
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runScript(script: "install.sh" | "uninstall.sh", src: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync("/bin/bash", [path.join(src, "install", script), ...args], {
    encoding: "utf8",
    env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", LC_ALL: "C", ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Entry {
  path: string;
  type: "file" | "link" | "dir";
  mode: string;
  /** sha256 for files, target for links */
  content?: string;
  mtime?: number;
}

/**
 * Every entry under `root` with type, permission bits, content hash or link target, and file
 * mtimes (a rewritten file with the same content still shows). Directory mtimes only with
 * `dirMtimes` (adding and then removing an entry changes them even when the tree is the same).
 */
export function tree(root: string, opts: { dirMtimes?: boolean } = {}): Entry[] {
  const out: Entry[] = [];
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    if (st.isSymbolicLink()) out.push({ path: rel, type: "link", mode, content: fs.readlinkSync(abs) });
    else if (st.isDirectory()) {
      out.push({ path: rel, type: "dir", mode, ...(opts.dirMtimes ? { mtime: st.mtimeMs } : {}) });
      for (const name of fs.readdirSync(abs).sort()) walk(rel === "" ? name : `${rel}/${name}`);
    } else {
      const content = crypto.createHash("sha256").update(fs.readFileSync(abs)).digest("hex");
      out.push({ path: rel, type: "file", mode, content, mtime: st.mtimeMs });
    }
  };
  walk("");
  return out;
}

export function treeHash(entries: Entry[]): string {
  return crypto.createHash("sha256").update(JSON.stringify(entries)).digest("hex");
}

/** Entries of `after` that are new or different from `before`, keyed by path. */
export function changed(before: Entry[], after: Entry[]): Record<string, Omit<Entry, "path" | "mtime">> {
  const old = new Map(before.map((e) => [e.path, JSON.stringify({ ...e, mtime: undefined })]));
  const out: Record<string, Omit<Entry, "path" | "mtime">> = {};
  for (const e of after) {
    const { path: p, mtime: _m, ...rest } = e;
    if (old.get(p) !== JSON.stringify({ ...e, mtime: undefined })) out[p] = rest;
  }
  return out;
}

export function sha(text: string | Buffer): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/** Compile one profile with the real parser against the policy under `aaDir` (no kernel needed). */
export function compile(aaDir: string, profile: string): Run {
  const r = spawnSync(PARSER, ["-QK", "-M", FEATURES, "-I", aaDir, "--base", aaDir, profile], {
    cwd: aaDir,
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
