/**
 * The system-test lab: a real virtlogd + libvirtd on this machine, virt-aa-hook installed with
 * install/install.sh, and helpers to drive guests with virsh. Everything it changes is recorded
 * here and put back by `teardown()` (see docs/system-tests.md):
 *
 * - /etc/libvirt/qemu.conf: `security_driver = "none"` appended when it pins no driver (the kernel
 *   has no AppArmor); original bytes restored.
 * - /dev/kvm: group kvm, mode 0660 (libvirt re-probes QEMU on every call otherwise); restored.
 * - virtlogd, libvirtd: started only when not running, and then stopped at the end.
 * - install.sh / uninstall.sh, and /etc/libvirt/virt-aa-hook.conf written for the test.
 * - guests named vaah-systest-*, their images under /var/lib/libvirt/images/vaah-systest-XXXX/,
 *   NVRAM, QEMU logs, save files; an "admin" profile in /etc/apparmor.d/libvirt/.
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const REPO = path.resolve(new URL("../..", import.meta.url).pathname);
export const ENABLED = process.env.VIRT_AA_HOOK_SYSTEM === "1" || process.env.CI === "true";
export const HOW =
  "changes this machine (starts libvirtd, installs virt-aa-hook): opt in with VIRT_AA_HOOK_SYSTEM=1 (or CI=true): npm run test:system";

export const PREFIX = "vaah-systest-";
export const VIRSH = "/usr/bin/virsh";
export const URI = "qemu:///system";
export const PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin";
export const HOOK_LOG = "/var/log/libvirt/virt-aa-hook.log";
export const CONFIG = "/etc/libvirt/virt-aa-hook.conf";
export const PROFILE_DIR = "/etc/apparmor.d/libvirt";
export const STATE_DIR = "/var/lib/virt-aa-hook";
export const RUN_DIR = "/run/virt-aa-hook";
export const CACHE_DIR = "/var/cache/apparmor/virt-aa-hook";
export const HOOK_LINK = "/etc/libvirt/hooks/qemu.d/virt-aa-hook";
export const INSTALLED_BUNDLE = "/usr/lib/virt-aa-hook/virt-aa-hook.cjs";
export const FEATURES = "/usr/share/apparmor-features/features";
export const PARSER = "/usr/sbin/apparmor_parser";
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd";
export const NVRAM_DIR = "/var/lib/libvirt/qemu/nvram";
const QEMU_CONF = "/etc/libvirt/qemu.conf";
const LIBVIRTD_PID = "/run/libvirtd.pid";
const VIRTLOGD_PID = "/run/virtlogd.pid";
const KVM = "/dev/kvm";
const VIRT_ADMIN = "/usr/bin/virt-admin";
const LOG_FILTERS = "1:util.hook 3:*";
const VIRTLOGD_LOG = "/var/log/libvirt/virtlogd.log";
const CAPS_CACHE = "/var/cache/libvirt/qemu/capabilities";
const LOSETUP = "/usr/sbin/losetup";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program by absolute path, no shell, fixed environment. */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions & { env?: NodeJS.ProcessEnv } = {}): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: 300_000,
    ...opts,
    env: { PATH: PATH_ENV, LC_ALL: "C", ...(opts.env ?? {}) },
  });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return { status: r.status, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), ms: performance.now() - t0 };
}

export function virsh(...args: string[]): Run {
  return run(VIRSH, ["-c", URI, ...args]);
}

/** virsh that must succeed. */
export function virshOk(...args: string[]): string {
  const r = virsh(...args);
  if (r.status !== 0) throw new Error(`virsh ${args.join(" ")}: exit ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

function alive(pidfile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidfile, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function waitFor(what: string, ms: number, ok: () => boolean): void {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    sleep(100);
  }
}

/** No process has this pid (signal 0 fails). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** Stop a daemon we started (by its pid), SIGTERM then SIGKILL. */
export function stopPid(pid: number): void {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  try {
    waitFor(`pid ${pid} to exit`, 30_000, () => pidGone(pid));
  } catch {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
    waitFor(`pid ${pid} to exit after SIGKILL`, 10_000, () => pidGone(pid));
  }
}

/** Byte offset of a file (0 when absent): logs are read from here on. */
export function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export function readFrom(file: string, offset: number): string {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.min(offset, buf.length)).toString("utf8");
  } catch {
    return "";
  }
}

export interface HookSummary {
  /** ms since the epoch, from the line's ISO timestamp */
  at: number;
  guest: string;
  op: string;
  exit: number;
  ms: number;
  result: string;
}

/** Summary lines of the hook log (src/hook/log.ts) written after `offset` (`file`: another host's log, test/fleet). */
export function hookSummaries(offset: number, file = HOOK_LOG): HookSummary[] {
  const out: HookSummary[] = [];
  const re = /^(\S+) virt-aa-hook\[\d+\]: guest=("(?:[^"\\]|\\.)*") op=("(?:[^"\\]|\\.)*") exit=(\d+) ms=(\d+) result=("(?:[^"\\]|\\.)*")$/;
  for (const line of readFrom(file, offset).split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({
      at: Date.parse(m[1]!),
      guest: JSON.parse(m[2]!) as string,
      op: JSON.parse(m[3]!) as string,
      exit: Number(m[4]),
      ms: Number(m[5]),
      result: JSON.parse(m[6]!) as string,
    });
  }
  return out;
}

/** libvirtd's debug lines (filter 1:util.hook) for each hook it ran: when, which guest, which op. */
export function libvirtdHookCalls(text: string): { at: number; guest: string; op: string }[] {
  const out: { at: number; guest: string; op: string }[] = [];
  const re = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\+0000: \d+: debug : virRunScript:\d+ : Calling hook \S+ id=(\S+) op=(\S+) subop=/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (m) out.push({ at: Date.parse(`${m[1]}T${m[2]}Z`), guest: m[3]!, op: m[4]! });
  }
  return out;
}

/** "op exit" pairs of one guest's hook calls since `offset`, in order. */
export function hookOps(guest: string, offset: number, file = HOOK_LOG): string[] {
  return hookSummaries(offset, file)
    .filter((s) => s.guest === guest)
    .map((s) => `${s.op} ${s.exit}`);
}

export interface DiskSpec {
  /** Absent: an empty drive (a cdrom with no medium). */
  path?: string;
  format: "qcow2" | "raw";
  device?: "disk" | "cdrom";
  target: string;
}

export interface GuestSpec {
  name: string;
  uuid: string;
  disks: DiskSpec[];
  serialLog?: string;
  /** NVRAM path: the guest boots OVMF (pc machine, non-secure OVMF_CODE.fd). */
  nvram?: string;
  emulator?: string;
  /** More `<devices>` children, as XML text (e.g. a virtio-scsi controller). */
  extraDevices?: string;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/</g, "&lt;");

export function guestXml(g: GuestSpec): string {
  const disks = g.disks
    .map((d) => {
      const cdrom = d.device === "cdrom";
      const bus = cdrom ? "ide" : "virtio";
      return `    <disk type='file' device='${d.device ?? "disk"}'>
      <driver name='qemu' type='${d.format}'/>${d.path === undefined ? "" : `\n      <source file='${esc(d.path)}'/>`}
      <target dev='${d.target}' bus='${bus}'/>${cdrom ? "\n      <readonly/>" : ""}
    </disk>`;
    })
    .join("\n");
  const firmware = g.nvram
    ? `
    <loader readonly='yes' type='pflash'>${OVMF_CODE}</loader>
    <nvram template='${OVMF_VARS}'>${esc(g.nvram)}</nvram>`
    : "";
  const serial = g.serialLog
    ? `    <serial type='file'><source path='${esc(g.serialLog)}'/><target port='0'/></serial>\n`
    : "";
  return `<domain type='qemu'>
  <name>${g.name}</name>
  <uuid>${g.uuid}</uuid>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>${firmware}
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>${g.emulator ?? "/usr/bin/qemu-system-x86_64"}</emulator>
${disks}
${serial}${g.extraDevices ?? ""}    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

export function randomUuid(): string {
  return crypto.randomUUID();
}

export interface QemuProcess {
  pid: number;
  exe: string;
  argv: string[];
  ppid: number;
  /** The parent's executable ("?" when the kernel will not say) and its comm. */
  parentExe: string;
  parentComm: string;
}

/**
 * The running QEMU of a guest, from libvirt's pidfile. `root`: where that libvirtd's files are
 * seen from here (test/fleet: `/proc/<pid>/root` of a host in its own mount namespace).
 */
export function qemuProcess(name: string, root = ""): QemuProcess {
  const pid = Number(fs.readFileSync(`${root}/run/libvirt/qemu/${name}.pid`, "utf8").trim());
  const exe = fs.readlinkSync(`/proc/${pid}/exe`);
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  if (argv[argv.length - 1] === "") argv.pop();
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  let parentExe = "";
  try {
    parentExe = fs.readlinkSync(`/proc/${ppid}/exe`);
  } catch {
    parentExe = "?";
  }
  let parentComm = "";
  try {
    parentComm = fs.readFileSync(`/proc/${ppid}/comm`, "utf8").trim();
  } catch {
    parentComm = "?";
  }
  return { pid, exe, argv, ppid, parentExe, parentComm };
}

/**
 * The last QEMU command line libvirt wrote to /var/log/libvirt/qemu/NAME.log: environment lines,
 * then the emulator and its arguments, one `\`-continued line each, shell-quoted when needed.
 */
export function loggedCommandLine(name: string, root = ""): string[] {
  const text = fs.readFileSync(`${root}/var/log/libvirt/qemu/${name}.log`, "utf8");
  const starts = [...text.matchAll(/^LC_ALL=C \\$/gm)].map((m) => m.index ?? 0);
  const start = starts[starts.length - 1];
  if (start === undefined) throw new Error(`no command line in /var/log/libvirt/qemu/${name}.log`);
  const lines: string[] = [];
  for (const line of text.slice(start).split("\n")) {
    if (line.endsWith(" \\")) lines.push(line.slice(0, -2));
    else {
      lines.push(line);
      break;
    }
  }
  const tokens: string[] = [];
  for (const line of lines) {
    for (const m of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) {
      tokens.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!);
    }
  }
  // Environment assignments first, then the emulator.
  const first = tokens.findIndex((t) => t.startsWith("/"));
  return tokens.slice(first);
}

interface Saved {
  qemuConf?: Buffer;
  kvm?: { mode: number; gid: number };
  startedVirtlogd?: number;
  /** We started libvirtd: stop it at the end. */
  startedLibvirtd?: boolean;
  /** libvirtd was running before: its log outputs and filters, put back at the end. */
  libvirtdLogging?: { outputs: string; filters: string };
  hookLogExisted: boolean;
  virtlogdLogExisted: boolean;
  runLibvirtExisted: boolean;
  cacheExisted: boolean;
  runExisted: boolean;
  installed: boolean;
}

/**
 * The tests' /etc/libvirt/virt-aa-hook.conf: load into the fake securityfs `securityfs`, the
 * packaged features file, warn at `started` (no AppArmor label to read), debug log; then `extra`.
 */
export function testConfig(securityfs: string, extra: Record<string, string> = {}): string {
  const conf: Record<string, string> = {
    mode: "enforce",
    subdomainfs: securityfs,
    features_file: FEATURES,
    started_check: "warn",
    log_level: "debug",
    ...extra,
  };
  return Object.entries(conf).map(([k, v]) => `${k} = "${v}"\n`).join("");
}

/** Empties (or creates) a fake securityfs's interface files, so the next load/unload is all they hold. */
export function resetFakeSecurityfs(dir: string): void {
  fs.writeFileSync(path.join(dir, ".replace"), "");
  fs.writeFileSync(path.join(dir, ".remove"), "");
}

/** What apparmor_parser sent to a fake securityfs's .replace (compiled profiles). */
export function fakeReplaced(dir: string): Buffer {
  return fs.readFileSync(path.join(dir, ".replace"));
}

/** What apparmor_parser sent to a fake securityfs's .remove (profile names). */
export function fakeRemoved(dir: string): string {
  return fs.readFileSync(path.join(dir, ".remove"), "latin1");
}

/** qemu-img by absolute path; throws with its stderr when it fails. */
export function qemuImg(args: string[]): void {
  const r = run("/usr/bin/qemu-img", args);
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(" ")}: ${r.stderr}`);
}

export class Lab {
  readonly id = crypto.randomBytes(4).toString("hex");
  /** Images, save files, serial logs: readable by libvirt's QEMU user. */
  readonly images = `/var/lib/libvirt/images/${PREFIX}${this.id}`;
  /** Our own scratch: fake securityfs, libvirtd log. */
  readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
  readonly securityfs = path.join(this.tmp, "securityfs");
  readonly libvirtdLog = path.join(this.tmp, "libvirtd.log");
  /** Offsets of the logs when the current test started. */
  hookLogMark = 0;
  libvirtdLogMark = 0;
  /** Hook log offset when the lab started: the wall-time table covers everything after it. */
  hookLogStart = 0;
  readonly extraFiles: string[] = [];
  /** Transient networks this lab created (net-create): destroyed at teardown. */
  readonly networks: string[] = [];
  /** Loop devices this lab attached (losetup): detached at teardown. */
  readonly loops: string[] = [];
  private autostartedNetworks: string[] = [];
  private readonly saved: Saved;

  constructor() {
    this.saved = {
      hookLogExisted: fs.existsSync(HOOK_LOG),
      virtlogdLogExisted: fs.existsSync(VIRTLOGD_LOG),
      runLibvirtExisted: fs.existsSync("/run/libvirt"),
      cacheExisted: fs.existsSync(CACHE_DIR),
      runExisted: fs.existsSync(RUN_DIR),
      installed: false,
    };
    this.hookLogStart = sizeOf(HOOK_LOG);
    fs.mkdirSync(this.images, { mode: 0o755 });
    fs.mkdirSync(this.securityfs);
    resetFakeSecurityfs(this.securityfs);
  }

  mark(): void {
    this.hookLogMark = sizeOf(HOOK_LOG);
    this.libvirtdLogMark = sizeOf(this.libvirtdLog);
  }

  /** qemu.conf and /dev/kvm as the recipe needs them; daemons started when not running. */
  startDaemons(): void {
    const conf = fs.readFileSync(QEMU_CONF);
    if (!/^\s*security_driver\s*=/m.test(conf.toString("utf8"))) {
      this.saved.qemuConf = conf;
      fs.appendFileSync(QEMU_CONF, `\n# added by virt-aa-hook system tests (restored at the end)\nsecurity_driver = "none"\n`);
    }
    if (fs.existsSync(KVM)) {
      const st = fs.statSync(KVM);
      const kvmGid = Number(/^kvm:x:(\d+):/m.exec(fs.readFileSync("/etc/group", "utf8"))?.[1] ?? "-1");
      if (kvmGid >= 0 && (st.gid !== kvmGid || (st.mode & 0o777) !== 0o660)) {
        this.saved.kvm = { mode: st.mode & 0o7777, gid: st.gid };
        fs.chownSync(KVM, st.uid, kvmGid);
        fs.chmodSync(KVM, 0o660);
      }
    }
    fs.mkdirSync("/run/libvirt", { recursive: true });
    if (alive(VIRTLOGD_PID) === undefined) {
      const r = run("/usr/sbin/virtlogd", ["-d"]);
      if (r.status !== 0) throw new Error(`virtlogd -d: exit ${r.status}: ${r.stderr}`);
      waitFor("virtlogd's pidfile", 10_000, () => alive(VIRTLOGD_PID) !== undefined);
      this.saved.startedVirtlogd = alive(VIRTLOGD_PID);
    }
    if (alive(LIBVIRTD_PID) === undefined) {
      this.startLibvirtd();
      this.saved.startedLibvirtd = true;
      // Networks it autostarted (dnsmasq would outlive it): stopped again at the end, when
      // nothing of libvirt ran before us.
      if (!this.saved.runLibvirtExisted) {
        this.autostartedNetworks = virshOk("net-list", "--name").split("\n").map((l) => l.trim()).filter(Boolean);
      }
    } else {
      // Not ours: add our log file (hook debug lines) to its outputs until the end of the run.
      const get = (what: string) => run(VIRT_ADMIN, [`daemon-log-${what}`]).stdout.replace(/^\s*Logging \w+:\s*/, "").trim();
      this.saved.libvirtdLogging = { outputs: get("outputs"), filters: get("filters") };
      this.setLibvirtdLogging(`${this.saved.libvirtdLogging.outputs} 1:file:${this.libvirtdLog}`.trim(), LOG_FILTERS);
    }
  }

  private setLibvirtdLogging(outputs: string, filters: string): void {
    for (const [what, value] of [["outputs", outputs], ["filters", filters]] as const) {
      const r = run(VIRT_ADMIN, [`daemon-log-${what}`, value]);
      if (r.status !== 0) throw new Error(`virt-admin daemon-log-${what} ${value}: ${r.stderr.trim()}`);
    }
  }

  startLibvirtd(): void {
    const r = run("/usr/sbin/libvirtd", ["-d"], {
      env: { LIBVIRT_LOG_FILTERS: LOG_FILTERS, LIBVIRT_LOG_OUTPUTS: `1:file:${this.libvirtdLog}` },
    });
    if (r.status !== 0) throw new Error(`libvirtd -d: exit ${r.status}: ${r.stderr}`);
    // The first start probes QEMU's capabilities (~12 s on 2 idle cores).
    waitFor("libvirtd to answer", 180_000, () => alive(LIBVIRTD_PID) !== undefined && virsh("version").status === 0);
  }

  /** SIGTERM libvirtd (guests keep running) and start it again, with its own logging if it was not ours. */
  restartLibvirtd(): void {
    const pid = alive(LIBVIRTD_PID);
    if (pid !== undefined) stopPid(pid);
    this.startLibvirtd();
    if (this.saved.libvirtdLogging) {
      this.setLibvirtdLogging(`${this.saved.libvirtdLogging.outputs} 1:file:${this.libvirtdLog}`.trim(), LOG_FILTERS);
    }
  }

  /**
   * Waits for libvirtd's rescan of the hook directories after SIGHUP (its util.hook debug lines
   * in our log): until it found our hook, or found no qemu.d at all.
   */
  waitForHookScan(found: boolean): void {
    const want = found ? `Found hook script ${HOOK_LINK}` : "Hook dir /etc/libvirt/hooks/qemu.d is not accessible";
    waitFor(`libvirtd's log to say "${want}"`, 60_000, () => readFrom(this.libvirtdLog, this.libvirtdLogMark).includes(want));
  }

  install(): Run {
    const r = run("/bin/bash", [path.join(REPO, "install/install.sh"), "--reload", "--node", process.execPath]);
    if (r.status === 0) this.saved.installed = true;
    return r;
  }

  uninstall(force = false): Run {
    const r = run("/bin/bash", [path.join(REPO, "install/uninstall.sh"), "--reload", ...(force ? ["--force"] : [])]);
    if (r.status === 0) this.saved.installed = false;
    return r;
  }

  writeConfig(extra: Record<string, string> = {}): void {
    fs.writeFileSync(CONFIG, testConfig(this.securityfs, extra), { mode: 0o644 });
  }

  /** Empties the fake securityfs interface files, so the next load/unload is all they hold. */
  resetSecurityfs(): void {
    resetFakeSecurityfs(this.securityfs);
  }

  replaced(): Buffer {
    return fakeReplaced(this.securityfs);
  }

  removed(): string {
    return fakeRemoved(this.securityfs);
  }

  /** qemu-img create, by absolute path. */
  qemuImg(args: string[]): void {
    qemuImg(args);
  }

  /**
   * A transient isolated network (no forward, no IP, so no dnsmasq) on a bridge of its own:
   * `<interface type='network'>` NICs get a tap on it. Destroyed at teardown.
   */
  createNetwork(name: string, bridge: string): void {
    const file = path.join(this.tmp, `${name}.net.xml`);
    fs.writeFileSync(file, `<network>\n  <name>${name}</name>\n  <bridge name='${bridge}'/>\n</network>\n`);
    this.networks.push(name);
    virshOk("net-create", file);
  }

  /** A loop device over `file` (losetup, by absolute path); detached at teardown. */
  attachLoop(file: string): string {
    const r = run(LOSETUP, ["--find", "--show", file]);
    if (r.status !== 0) throw new Error(`losetup --find --show ${file}: ${r.stderr.trim()}`);
    const dev = r.stdout.trim();
    this.loops.push(dev);
    return dev;
  }

  detachLoop(dev: string): void {
    const i = this.loops.indexOf(dev);
    if (i < 0) return;
    const r = run(LOSETUP, ["--detach", dev]);
    if (r.status !== 0) throw new Error(`losetup --detach ${dev}: ${r.stderr.trim()}`);
    this.loops.splice(i, 1);
  }

  /** UUIDs of every guest this lab defined: their leftovers are removed at teardown. */
  readonly uuids: string[] = [];

  define(g: GuestSpec): void {
    this.uuids.push(g.uuid);
    const file = path.join(this.tmp, `${g.name}.xml`);
    fs.writeFileSync(file, guestXml(g));
    virshOk("define", file);
  }

  /** What explains a failure: the hook log and libvirtd's log since the test started. */
  diagnostics(): string {
    const hook = readFrom(HOOK_LOG, this.hookLogMark).split("\n").slice(-80).join("\n");
    const lvd = readFrom(this.libvirtdLog, this.libvirtdLogMark)
      .split("\n")
      .filter((l) => /hook|error|warn/i.test(l))
      .slice(-60)
      .join("\n");
    return `\n----- ${HOOK_LOG} (this test) -----\n${hook || "(nothing)"}\n----- ${this.libvirtdLog} (this test: hook, error, warning lines) -----\n${lvd || "(nothing)"}\n-----`;
  }

  /**
   * The hook's wall time per operation, median and max: as the hook measured itself (its log's
   * summary lines) and as libvirt saw it (libvirtd's "Calling hook" debug line to the hook's
   * summary line, which is written just before it exits; only when libvirtd logs to our file).
   */
  timeTable(): string {
    const calls = libvirtdHookCalls(readFrom(this.libvirtdLog, 0));
    const summaries = hookSummaries(this.hookLogStart);
    const own = new Map<string, number[]>();
    const seen = new Map<string, number[]>();
    const used = new Set<number>();
    for (const s of summaries) {
      const key = `${s.op} (exit ${s.exit})`;
      own.set(key, [...(own.get(key) ?? []), s.ms]);
    }
    for (const c of calls) {
      const i = summaries.findIndex((s, j) => !used.has(j) && s.guest === c.guest && s.op === c.op && s.at >= c.at);
      if (i < 0) continue;
      used.add(i);
      const s = summaries[i]!;
      const key = `${s.op} (exit ${s.exit})`;
      seen.set(key, [...(seen.get(key) ?? []), s.at - c.at]);
    }
    const stats = (ms: number[] | undefined) => {
      if (!ms?.length) return ["-", "-"];
      const v = [...ms].sort((a, b) => a - b);
      const mid = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
      return [String(Math.round(mid)), String(Math.round(v[v.length - 1]!))];
    };
    const lines = [
      "virt-aa-hook wall time per operation, ms (hook: its own log's ms=; libvirt: libvirtd's 'Calling hook' to the hook's summary line)",
      `${"operation".padEnd(20)} ${"calls".padStart(5)} ${"hook median".padStart(12)} ${"hook max".padStart(9)} ${"libvirt median".padStart(15)} ${"libvirt max".padStart(12)}`,
    ];
    for (const key of [...own.keys()].sort()) {
      const [hm, hx] = stats(own.get(key));
      const [lm, lx] = stats(seen.get(key));
      lines.push(`${key.padEnd(20)} ${String(own.get(key)!.length).padStart(5)} ${hm!.padStart(12)} ${hx!.padStart(9)} ${lm!.padStart(15)} ${lx!.padStart(12)}`);
    }
    return lines.join("\n");
  }

  /** Everything back as it was; collects problems instead of stopping at the first. */
  teardown(): string[] {
    const problems: string[] = [];
    const attempt = (what: string, f: () => void) => {
      try {
        f();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    let names: string[] = [];
    attempt("list guests", () => {
      names = virshOk("list", "--all", "--name")
        .split("\n")
        .map((s) => s.trim())
        .filter((s) => s.startsWith(PREFIX));
    });
    for (const n of names) {
      virsh("destroy", n);
      const r = virsh("undefine", "--nvram", "--managed-save", n);
      if (r.status !== 0) problems.push(`undefine ${n}: ${r.stderr.trim()}`);
    }
    for (const net of this.networks) {
      if (virsh("net-info", net).status === 0) attempt(`net-destroy ${net}`, () => void virshOk("net-destroy", net));
    }
    for (const dev of this.loops) attempt(`losetup -d ${dev}`, () => this.detachLoop(dev));
    if (this.saved.installed) {
      attempt("uninstall", () => {
        const r = this.uninstall(true);
        if (r.status !== 0) throw new Error(r.stderr.trim());
      });
    }
    attempt("config", () => fs.rmSync(CONFIG, { force: true }));
    for (const net of this.autostartedNetworks) attempt(`net-destroy ${net}`, () => void virshOk("net-destroy", net));
    if (this.saved.startedLibvirtd) attempt("stop libvirtd", () => {
      const pid = alive(LIBVIRTD_PID);
      if (pid !== undefined) stopPid(pid);
    });
    else if (this.saved.libvirtdLogging) {
      const { outputs, filters } = this.saved.libvirtdLogging;
      attempt("restore libvirtd's logging", () => this.setLibvirtdLogging(outputs, filters));
    }
    if (this.saved.startedVirtlogd !== undefined) attempt("stop virtlogd", () => stopPid(this.saved.startedVirtlogd!));
    if (this.saved.qemuConf) attempt("restore qemu.conf", () => fs.writeFileSync(QEMU_CONF, this.saved.qemuConf!));
    if (this.saved.kvm) {
      attempt("restore /dev/kvm", () => {
        fs.chownSync(KVM, fs.statSync(KVM).uid, this.saved.kvm!.gid);
        fs.chmodSync(KVM, this.saved.kvm!.mode);
      });
    }
    attempt("remove files", () => {
      for (const f of this.extraFiles) fs.rmSync(f, { recursive: true, force: true });
      for (const dir of [NVRAM_DIR, "/var/log/libvirt/qemu", "/var/lib/libvirt/qemu/save"]) {
        if (!fs.existsSync(dir)) continue;
        for (const e of fs.readdirSync(dir)) if (e.startsWith(PREFIX)) fs.rmSync(path.join(dir, e), { force: true });
      }
      fs.rmSync(this.images, { recursive: true, force: true });
      // Profiles of guests that were still running when a failed run uninstalled the hook.
      for (const u of this.uuids) {
        for (const f of [`${PROFILE_DIR}/libvirt-${u}`, `${PROFILE_DIR}/libvirt-${u}.files`]) fs.rmSync(f, { force: true });
      }
      if (!this.saved.hookLogExisted) fs.rmSync(HOOK_LOG, { force: true });
      // Daemons we started and stopped: their runtime directory and log, when they made them.
      const libvirtdGone = this.saved.startedLibvirtd === true && alive(LIBVIRTD_PID) === undefined;
      const virtlogdGone = this.saved.startedVirtlogd !== undefined && alive(VIRTLOGD_PID) === undefined;
      if (virtlogdGone && !this.saved.virtlogdLogExisted) fs.rmSync(VIRTLOGD_LOG, { force: true });
      if (libvirtdGone && virtlogdGone && !this.saved.runLibvirtExisted) fs.rmSync("/run/libvirt", { recursive: true, force: true });
      // libvirt's cached capabilities of the wrapper emulator, which is gone now.
      if (fs.existsSync(CAPS_CACHE)) {
        for (const e of fs.readdirSync(CAPS_CACHE)) {
          const f = path.join(CAPS_CACHE, e);
          if (fs.readFileSync(f, "utf8").includes("<emulator>/usr/lib/virt-aa-hook/")) fs.rmSync(f, { force: true });
        }
      }
      if (!this.saved.cacheExisted) fs.rmSync(CACHE_DIR, { recursive: true, force: true });
      if (!this.saved.runExisted) fs.rmSync(RUN_DIR, { recursive: true, force: true });
      fs.rmSync(this.tmp, { recursive: true, force: true });
    });
    return problems;
  }
}

/** Sorted "path sha256" of every file and link under the given trees: the machine's state to compare. */
export function snapshot(roots: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) out.push(`${p} -> ${fs.readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.push(`${p}/ ${(st.mode & 0o7777).toString(8)}`);
      for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
    } else if (!st.isFile()) {
      // A socket or FIFO (a running libvirtd's /run/libvirt): its type and mode, never opened.
      out.push(`${p} ${st.mode.toString(8)}`);
    } else {
      out.push(`${p} ${(st.mode & 0o7777).toString(8)} ${crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex")}`);
    }
  };
  for (const r of roots) walk(r);
  return out;
}
