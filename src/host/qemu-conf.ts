/**
 * libvirt's qemu.conf (Layout.qemuConf), read at the edge into a typed `QemuConf` with libvirt's
 * default for every key the file does not set. Only the settings that move a per-guest path or a
 * file QEMU opens are kept (docs/qemu-conf.md); every other key is parsed (a syntax error anywhere
 * is still an error: libvirt refuses such a file too) and ignored.
 *
 * The syntax is libvirt's virConf (src/util/virconf.c, virConfParse*): `name = value` lines,
 * `#` comments to the end of the line, an optional `;` after a value, values that are strings
 * ("..." or '...' without escapes, or """...""" over several lines), integers, or lists
 * `[ v, v, ]` that may span lines. The last assignment of a key wins (virConfSetValue replaces).
 *
 * qemu.conf is the admin's file: trusted, but parsed defensively. A broken file or a value of the
 * wrong type is a HostError naming the file, the line and the key, never a crash.
 */
import path from "node:path";
import { HostError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { Layout } from "../layout.js";

/** One `nvram = [ "LOADER:TEMPLATE", ... ]` entry (qemu_conf.c virFirmwareParseList). */
export interface NvramPair {
  /** The firmware code image QEMU maps (the `<loader>`). */
  loader: string;
  /** The variables template libvirtd copies into the guest's `<nvram>`; QEMU never opens it. */
  template: string;
}

/** Which TLS users qemu.conf turns on, and the certificate directory each one uses. */
export interface TlsSetting {
  /** `<user>_tls = 1` (vnc, spice, chardev, nbd): every such device of every guest uses TLS. */
  enabled: boolean;
  /** `<user>_tls_x509_cert_dir`, or `default_tls_x509_cert_dir` when it is not set. */
  certDir: string;
}

export interface QemuConf {
  /** The file the values came from (host path), for messages. */
  file: string;
  /**
   * libvirt's memory backing dir (cfg->memoryBackingDir): per-guest `<this>/<id>-<short name>`
   * for `<source type='file'/>` RAM (qemuGetMemoryBackingDomainPath in libvirt's qemu_conf.c).
   * Not the string qemu.conf writes: when `memory_backing_dir` is set, libvirt appends
   * `/libvirt/qemu` to it as it loads the file (virQEMUDriverConfigLoadMemoryEntry, qemu_conf.c;
   * the lab saw libvirt 9.0 label `/srv/lab-ram/libvirt/qemu/3-lab-m`); unset, it is
   * `/var/lib/libvirt/qemu/ram` as is. One layout, no version split, in the libvirt sources read
   * (9.x-era master and the lab's 9.0); the pre-6.x code appended `/libvirt/qemu` in
   * qemuGetMemoryBackingBasePath instead, to the default too (not granted here).
   */
  memoryBackingDir: string;
  /**
   * `hugetlbfs_mount` (a string or a list): undefined when not set (libvirt then finds the
   * hugetlbfs mounts in /proc/mounts, host/mounts.ts); when set, exactly these mount points ("" and
   * `[]` mean none: no guest gets hugepages).
   */
  hugetlbfsMount: readonly string[] | undefined;
  /** `nvram`: loader → template pairs (libvirt's DEFAULT_LOADER_NVRAM when unset). */
  nvram: readonly NvramPair[];
  /** `stdio_handler`: "logd" (QEMU writes to virtlogd's pipe) or "file" (to the log file itself). */
  stdioHandler: "logd" | "file";
  /** `auto_dump_path`: where libvirtd writes watchdog-triggered core dumps of every guest. */
  autoDumpPath: string;
  /** TLS users whose enablement is a qemu.conf switch. */
  vncTls: TlsSetting;
  spiceTls: TlsSetting;
  chardevTls: TlsSetting;
  nbdTls: TlsSetting;
  /** Migration: enabled = `migrate_tls_force` (every migration uses TLS). */
  migrateTls: TlsSetting;
  /** `backup_tls_x509_cert_dir` (TLS is requested per backup job, never by qemu.conf). */
  backupTlsCertDir: string;
  /** `default_tls_x509_cert_dir`. */
  defaultTlsCertDir: string;
}

/**
 * libvirt's defaults (qemu_conf.c virQEMUDriverConfigNew for the privileged daemon, with
 * LOCALSTATEDIR=/var and SYSCONFDIR=/etc as Debian builds it). The same in libvirt 9.0 and 10+.
 * Not configurable in qemu.conf in any libvirt (9.0 through 11): the swtpm storage, state and log
 * directories (only swtpm_user/swtpm_group are keys), channel_target_dir, nvram_dir, the save and
 * snapshot directories; those stay layout facts (layout.ts).
 */
const DEFAULT_NVRAM = [
  "/usr/share/OVMF/OVMF_CODE.fd:/usr/share/OVMF/OVMF_VARS.fd",
  "/usr/share/OVMF/OVMF_CODE.secboot.fd:/usr/share/OVMF/OVMF_VARS.fd",
  "/usr/share/AAVMF/AAVMF_CODE.fd:/usr/share/AAVMF/AAVMF_VARS.fd",
  "/usr/share/AAVMF/AAVMF32_CODE.fd:/usr/share/AAVMF/AAVMF32_VARS.fd",
];

/** libvirt's defaults, as a host without qemu.conf gets them. `exists` as for parseQemuConf. */
export function defaultQemuConf(layout: Layout, exists: (hostPath: string) => boolean = () => false): QemuConf {
  return fromValues(layout, new Map(), layout.qemuConf, exists);
}

/** qemu.conf files are a few KiB; a bound keeps a hostile root from stalling us. */
/** System locations no memory_backing_dir may be in (a subset of policy/restricted.ts FORBIDDEN). */
const SYSTEM_DIRS = ["/etc", "/proc", "/sys", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/boot", "/root", "/var/lib/virt-aa-hook", "/run/virt-aa-hook"];

const MAX_QEMU_CONF_BYTES = 1024 * 1024;

/**
 * qemu.conf under the layout's root, or libvirt's defaults when there is none (a host without
 * libvirt's daemon package, a test root). Throws HostError for a file libvirt would not accept.
 */
export function loadQemuConf(fs: HostFs): QemuConf {
  const file = fs.layout.qemuConf;
  let text: string;
  try {
    if (fs.stat(file) === undefined) return defaultQemuConf(fs.layout, existsIn(fs));
    text = fs.readHead(file, MAX_QEMU_CONF_BYTES).toString("utf8");
  } catch (err) {
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") {
      throw new HostError(`${file}: cannot be read: ${(err as NodeJS.ErrnoException).code}`);
    }
    throw err;
  }
  return parseQemuConf(text, fs.layout, file, existsIn(fs));
}

function existsIn(fs: HostFs): (hostPath: string) => boolean {
  return (hostPath) => {
    try {
      return fs.stat(hostPath) !== undefined;
    } catch {
      return false;
    }
  };
}

/**
 * qemu.conf text → QemuConf. `file` names it in errors; `exists` tells whether a host path exists
 * (libvirt picks a TLS user's built-in cert dir only when it exists).
 */
export function parseQemuConf(text: string, layout: Layout, file = layout.qemuConf, exists: (hostPath: string) => boolean = () => false): QemuConf {
  return fromValues(layout, parseVirConf(text, file), file, exists);
}

// ---- virConf syntax ----------------------------------------------------------------------------

export type ConfValue = { kind: "string"; value: string } | { kind: "int"; value: number } | { kind: "list"; value: ConfValue[] };

interface Entry {
  value: ConfValue;
  line: number;
}

/** name → its last assignment. */
export function parseVirConf(text: string, file: string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  let pos = 0;
  let line = 1;
  const fail = (why: string, key?: string): never => {
    throw new HostError(`${file}: line ${line}${key === undefined ? "" : `: ${key}`}: ${why}`);
  };
  const skipBlanks = () => {
    while (pos < text.length && (text[pos] === " " || text[pos] === "\t" || text[pos] === "\r")) pos++;
  };
  const skipComment = () => {
    if (text[pos] === "#") while (pos < text.length && text[pos] !== "\n") pos++;
  };
  // Blanks, newlines and comments (inside a list).
  const skipSpace = () => {
    for (;;) {
      skipBlanks();
      skipComment();
      if (text[pos] !== "\n") return;
      pos++;
      line++;
    }
  };

  const parseValue = (key: string, inList: boolean): ConfValue => {
    const c = text[pos];
    if (c === '"' || c === "'") {
      if (text.startsWith('"""', pos)) {
        const end = text.indexOf('"""', pos + 3);
        if (end < 0) fail("unterminated string", key);
        const value = text.slice(pos + 3, end);
        line += value.split("\n").length - 1;
        pos = end + 3;
        return { kind: "string", value };
      }
      let end = pos + 1;
      while (end < text.length && text[end] !== c && text[end] !== "\n") end++;
      if (text[end] !== c) fail("unterminated string", key);
      const value = text.slice(pos + 1, end);
      pos = end + 1;
      return { kind: "string", value };
    }
    if (c === "[") {
      if (inList) fail("lists cannot contain lists", key);
      pos++;
      const opened = line;
      const items: ConfValue[] = [];
      skipSpace();
      while (text[pos] !== "]") {
        if (pos >= text.length) {
          line = opened; // name the line the list starts on, not the end of the file
          fail("unterminated list", key);
        }
        items.push(parseValue(key, true));
        skipSpace();
        if (text[pos] === ",") {
          pos++;
          skipSpace();
        } else if (text[pos] !== "]" && pos < text.length) {
          fail("expecting a separator in list", key);
        }
      }
      pos++;
      return { kind: "list", value: items };
    }
    const m = /^[-+]?[0-9]+/.exec(text.slice(pos, pos + 32));
    if (m) {
      pos += m[0].length;
      return { kind: "int", value: Number(m[0]) };
    }
    return fail("expecting a value", key);
  };

  while (pos < text.length) {
    skipBlanks();
    skipComment();
    if (pos >= text.length) break;
    if (text[pos] === "\n") {
      pos++;
      line++;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(pos, pos + 256))?.[0];
    if (name === undefined) fail("expecting a name");
    pos += name!.length;
    skipBlanks();
    if (text[pos] !== "=") fail("expecting an assignment", name);
    pos++;
    skipBlanks();
    const startLine = line;
    const value = parseValue(name!, false);
    entries.set(name!, { value, line: startLine });
    skipBlanks();
    if (text[pos] === ";") pos++;
    skipBlanks();
    skipComment();
    if (pos < text.length && text[pos] !== "\n") fail("expecting a separator", name);
  }
  return entries;
}

// ---- typed values ------------------------------------------------------------------------------

function fromValues(layout: Layout, entries: Map<string, Entry>, file: string, exists: (hostPath: string) => boolean): QemuConf {
  const fail = (key: string, why: string): never => {
    throw new HostError(`${file}: line ${entries.get(key)?.line ?? 0}: ${key}: ${why}`);
  };
  const string = (key: string): string | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.value.kind !== "string") fail(key, `expected a string, found ${describe(entry.value)}`);
    return (entry.value as { value: string }).value;
  };
  const dir = (key: string, fallback: string): string => {
    const value = string(key);
    if (value === undefined) return fallback;
    if (!value.startsWith("/")) fail(key, `path is not absolute: ${JSON.stringify(value)}`);
    // Kept as written: `..` is refused, not resolved lexically (`/a/link/../x` is not `/a/x`
    // when `link` is a symlink); only doubled slashes, `.` and a trailing slash are dropped.
    if (value.split("/").includes("..")) fail(key, `path has a ".." component: ${JSON.stringify(value)}`);
    return trimSlashes(value);
  };
  // memory_backing_dir becomes a managed root (every guest's RAM dir): not `/`, not a directory
  // holding libvirt's own state or images, not a system location. The list repeats the gist of
  // policy/restricted.ts, which this stage may not import.
  const memoryDir = (written: string): string => {
    const ancestorOf = [...layout.libvirtManagedRoots([]), `${path.posix.dirname(layout.libvirtLibDir)}/images`, layout.libvirtConfigDir];
    const covers = ancestorOf.find((root) => written === "/" || root === written || root.startsWith(`${written}/`));
    if (covers !== undefined) fail("memory_backing_dir", `${JSON.stringify(written)} would make ${covers} part of every guest's RAM dir; name a dedicated directory`);
    const system = SYSTEM_DIRS.find((d) => written === d || written.startsWith(`${d}/`));
    if (system !== undefined) fail("memory_backing_dir", `${JSON.stringify(written)} is inside ${system}; name a dedicated directory`);
    return path.posix.join(written, "libvirt/qemu");
  };
  const flag = (key: string): boolean => {
    const entry = entries.get(key);
    if (entry === undefined) return false;
    // virConfGetValueBool: an integer, 0 or 1.
    if (entry.value.kind !== "int" || (entry.value.value !== 0 && entry.value.value !== 1)) fail(key, `expected 0 or 1, found ${describe(entry.value)}`);
    return entry.value.value === 1;
  };
  // virConfGetValueStringList(..., compatString): a list of strings, or one string as a list of one.
  const stringList = (key: string): string[] | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.value.kind === "string") return [entry.value.value];
    if (entry.value.kind !== "list") return fail(key, `expected a string or a list of strings, found ${describe(entry.value)}`);
    return entry.value.value.map((item) => (item.kind === "string" ? item.value : fail(key, `expected a list of strings, found ${describe(item)}`)));
  };

  const defaultTlsCertDir = dir("default_tls_x509_cert_dir", `${layout.libvirtPkiDir}/qemu`);
  // qemu_conf.c virQEMUDriverConfigSetDefaults (SET_TLS_X509_CERT_DEFAULT): the user's own
  // `<user>_tls_x509_cert_dir` when set; else /etc/pki/libvirt-<user> when that exists; else
  // default_tls_x509_cert_dir.
  const certDir = (user: string): string => {
    const builtIn = `${layout.libvirtPkiDir}/libvirt-${user}`;
    return dir(`${user}_tls_x509_cert_dir`, exists(builtIn) ? builtIn : defaultTlsCertDir);
  };
  const tls = (user: string, enabled: boolean): TlsSetting => ({ enabled, certDir: certDir(user) });

  const hugetlbfs = stringList("hugetlbfs_mount");
  for (const mount of hugetlbfs ?? []) {
    if (mount !== "" && !mount.startsWith("/")) fail("hugetlbfs_mount", `path is not absolute: ${JSON.stringify(mount)}`);
  }

  const nvramList = stringList("nvram") ?? DEFAULT_NVRAM;
  const nvram = nvramList.map((pair) => {
    // virFirmwareParse: exactly one ':' separating two non-empty paths.
    const parts = pair.split(":");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") fail("nvram", `expected "LOADER:TEMPLATE", found ${JSON.stringify(pair)}`);
    if (!parts[0]!.startsWith("/")) fail("nvram", `loader path is not absolute: ${JSON.stringify(parts[0])}`);
    return { loader: path.posix.normalize(parts[0]!), template: parts[1]! };
  });

  const stdio = string("stdio_handler") ?? "logd";
  if (stdio !== "logd" && stdio !== "file") fail("stdio_handler", `unknown stdio handler ${JSON.stringify(stdio)} (expected "logd" or "file")`);

  return {
    file,
    memoryBackingDir: string("memory_backing_dir") === undefined ? `${layout.libvirtLibDir}/ram` : memoryDir(dir("memory_backing_dir", "/")),
    hugetlbfsMount: hugetlbfs?.filter((mount) => mount !== "").map(trimSlashes),
    nvram,
    stdioHandler: stdio as QemuConf["stdioHandler"],
    autoDumpPath: dir("auto_dump_path", `${layout.libvirtLibDir}/dump`),
    vncTls: tls("vnc", flag("vnc_tls")),
    spiceTls: tls("spice", flag("spice_tls")),
    chardevTls: tls("chardev", flag("chardev_tls")),
    nbdTls: tls("nbd", flag("nbd_tls")),
    migrateTls: tls("migrate", flag("migrate_tls_force")),
    backupTlsCertDir: certDir("backup"),
    defaultTlsCertDir,
  };
}

function describe(value: ConfValue): string {
  return value.kind === "string" ? "a string" : value.kind === "int" ? "an integer" : "a list";
}

/** `/srv/ram/` → `/srv/ram` (libvirt pastes `/<name>` after it; a doubled slash names the same dir). */
function trimSlashes(dir: string): string {
  const normal = path.posix.normalize(dir);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/**
 * The directories qemu.conf may move that libvirt manages for every guest: below them only a
 * guest's own entries are granted (policy: RuntimeOwnership.managedRoots).
 */
export function qemuConfManagedRoots(qemu: QemuConf, layout: Layout): string[] {
  // memory_backing_dir = "/dev/shm" is common (vhost-user needs shared RAM): /dev/shm keeps its own
  // class then (only a <shmem> names objects there; the guest's own RAM dir is its own tree).
  const under = (dir: string, root: string) => dir === root || dir.startsWith(`${root}/`);
  return [qemu.memoryBackingDir, qemu.autoDumpPath].filter((dir) => !under(dir, layout.shmDir));
}
