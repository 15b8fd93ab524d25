/**
 * Two libvirt hosts on this one machine (docs/fleet-tests.md), for live migration between them.
 *
 * Each host is a holder process (`unshare --mount --uts --net --propagation private`) whose mount,
 * UTS and network namespaces every command of that host enters (`nsenter -t PID -m -u -n`, by
 * absolute path). Inside it:
 *
 * - /run is a fresh tmpfs (libvirtd's and virtlogd's sockets and pid files, QEMU pid files, the
 *   hook's locks: nothing is shared with the machine or the other host);
 * - /etc, /usr and /var are overlays on the machine's (upper layer in this run's scratch
 *   directory), so nothing a host writes anywhere there (install.sh's /usr/sbin/virt-aa-hook,
 *   /etc/systemd/system, /etc/logrotate.d, ...) reaches the machine; on top of them, bind mounts
 *   of the host's own directories: /etc/libvirt and /etc/apparmor.d (copies of the machine's,
 *   taken before anything starts), /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt
 *   (QEMU capabilities seeded from the machine's cache), /usr/lib/virt-aa-hook,
 *   /var/lib/virt-aa-hook, /var/cache/virt-aa-hook and /var/cache/apparmor (empty);
 * - /var/lib/libvirt/images is ONE machine directory bind-mounted at that path in both hosts:
 *   the shared image storage;
 * - hostname `vaah-fleet-a`/`-b` and its own `host_uuid` (libvirt refuses a migration to "the
 *   same host": qemu_migration_cookie.c, qemuMigrationCookieXMLParse compares both), lo up, and
 *   one end of a veth pair with an address from 192.0.2.0/24 (TEST-NET-1, RFC 5737: never routed
 *   off this machine; the pair exists only inside the two network namespaces);
 * - virtlogd and libvirtd (`--listen`, TCP on the veth address only, `auth_tcp = "none"`), then
 *   virt-aa-hook by install/install.sh, loading into a fake securityfs of its own (config
 *   `subdomainfs`, as test/system does: the kernel has no AppArmor).
 *
 * The test process reads a host's files through `/proc/<holder>/root` (its mount namespace).
 * `Fleet.teardown()` stops every process in the hosts' network namespaces (libvirtd, virtlogd,
 * QEMU, the holder) by pid; with the last one the namespaces, their mounts and the veth pair are
 * gone. The scratch directory is removed. The machine's own trees are compared before and after.
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  CONFIG,
  PROFILE_DIR,
  REPO,
  STATE_DIR,
  URI,
  VIRSH,
  fakeRemoved,
  fakeReplaced,
  guestXml,
  hookOps,
  hookSummaries,
  pidGone,
  readFrom,
  resetFakeSecurityfs,
  run,
  sizeOf,
  snapshot,
  stopPid,
  testConfig,
  waitFor,
  type GuestSpec,
  type HookSummary,
  type Run,
} from "../system/lab.js";

export const ENABLED = process.env.VIRT_AA_HOOK_FLEET === "1" || process.env.CI === "true";
export const HOW =
  "starts two libvirtd hosts in namespaces of their own on this machine: opt in with VIRT_AA_HOOK_FLEET=1 (or CI=true), after npm run build: npx vitest run test/fleet";

export const PREFIX = "vaah-fleet-";
export const IMAGES = "/var/lib/libvirt/images";
export const WRAPPER = "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64";
export const QEMU = "/usr/bin/qemu-system-x86_64";
const NSENTER = "/usr/bin/nsenter";
const UNSHARE = "/usr/bin/unshare";
const SETSID = "/usr/bin/setsid";
const IP = "/usr/sbin/ip";
const MOUNT = "/usr/bin/mount";
const MKDIR = "/usr/bin/mkdir";
const CP = "/usr/bin/cp";
const HOSTNAME = "/usr/bin/hostname";
const LIBVIRTD = "/usr/sbin/libvirtd";
const VIRTLOGD = "/usr/sbin/virtlogd";
/** Hook calls (util.hook) and the QMP commands libvirt sends (NBD server address), else warnings. */
const LOG_FILTERS = "1:util.hook 1:qemu.qemu_monitor 3:*";

/**
 * What the machine must have exactly as before the run: everything a host would write if a mount
 * were missing (install.sh's targets, libvirt's and the hook's state, logs, caches, runtime dirs).
 */
export const MACHINE_ROOTS = [
  "/etc/libvirt",
  "/etc/apparmor.d",
  "/etc/systemd/system",
  "/etc/logrotate.d",
  "/usr/lib/virt-aa-hook",
  "/usr/sbin/virt-aa-hook",
  "/var/lib/libvirt",
  "/var/log/libvirt",
  "/var/cache/libvirt",
  "/var/lib/virt-aa-hook",
  "/var/cache/virt-aa-hook",
  "/var/cache/apparmor",
  "/run/libvirt",
  "/run/libvirtd.pid",
  "/run/virtlogd.pid",
  "/run/virt-aa-hook",
  "/run/netns",
];

/** The machine's state the run must leave as it found it: its trees, network links and mounts. */
export function machineState(): { files: string[]; links: string[]; mounts: string[]; cgroups: string[] } {
  const links = run(IP, ["-o", "link", "show"]).stdout.split("\n").map((l) => l.replace(/^\d+: /, "").split(":")[0]!).filter(Boolean).sort();
  const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ").slice(3, 5).join(" ")).filter(Boolean).sort();
  // libvirt makes a cgroup per guest under <controller>/machine: none may be left.
  const cgroups = run("/usr/bin/find", ["/sys/fs/cgroup", "-mindepth", "2", "-maxdepth", "4", "-type", "d", "-path", "*/machine*"]).stdout.split("\n").filter(Boolean).sort();
  return { files: snapshot(MACHINE_ROOTS), links, mounts, cgroups };
}

/** Everything below `from` copied to `to` with mode and owner: directories always, files when `file(rel)` says so. */
function copySkeleton(from: string, to: string, file: (rel: string) => boolean, rel = ""): void {
  const src = path.join(from, rel);
  const dst = path.join(to, rel);
  const st = fs.lstatSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dst, { recursive: true });
    for (const e of fs.readdirSync(src)) copySkeleton(from, to, file, path.join(rel, e));
  } else if (st.isFile() && file(rel)) {
    fs.copyFileSync(src, dst);
  } else return;
  fs.chownSync(dst, st.uid, st.gid);
  fs.chmodSync(dst, st.mode & 0o7777);
}

/** Pids of every process in the network namespace `ns` (`net:[inode]`). */
function pidsIn(ns: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/ns/net`) === ns) out.push(Number(e));
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

export class Host {
  /** The holder: every command of this host enters its namespaces. */
  pid = 0;
  /** Its parent, `unshare --fork`, which ignores SIGTERM while it waits for the holder. */
  unsharePid = 0;
  /** Its network namespace (`net:[inode]`): every process of this host is found by it. */
  netns = "";
  readonly hostUuid = crypto.randomUUID();
  /** Fake securityfs (config `subdomainfs`): what apparmor_parser "loaded" and "removed". */
  readonly securityfs: string;
  /** This host's /var/log/libvirt, seen from the machine (also after teardown). */
  readonly logDir: string;
  hookLogMark = 0;
  libvirtdLogMark = 0;

  constructor(
    readonly name: "a" | "b",
    /** Its address on the veth pair. */
    readonly ip: string,
    /** The veth end in its network namespace. */
    readonly ifname: string,
    /** Its scratch directory on the machine (upper layers, copies, its own directories). */
    readonly dir: string,
  ) {
    this.securityfs = path.join(dir, "securityfs");
    this.logDir = path.join(dir, "var-log-libvirt");
  }

  get hostname(): string {
    return `${PREFIX}${this.name}`;
  }
  get hookLog(): string {
    return path.join(this.logDir, "virt-aa-hook.log");
  }
  get libvirtdLog(): string {
    return path.join(this.logDir, "libvirtd.log");
  }
  get uri(): string {
    return `qemu+tcp://${this.ip}/system`;
  }

  /** A path inside this host, as the test process reaches it (its mount namespace's root). */
  path(p: string): string {
    return `/proc/${this.pid}/root${p}`;
  }

  /** Runs a program (absolute path) in this host's namespaces. */
  exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
    return run(NSENTER, ["-t", String(this.pid), "-m", "-u", "-n", "--", cmd, ...args], { env });
  }

  execOk(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
    const r = this.exec(cmd, args, env);
    if (r.status !== 0) throw new Error(`host ${this.name}: ${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  virsh(...args: string[]): Run {
    return this.exec(VIRSH, ["-c", URI, ...args]);
  }

  virshOk(...args: string[]): string {
    const r = this.virsh(...args);
    if (r.status !== 0) throw new Error(`host ${this.name}: virsh ${args.join(" ")}: exit ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** Starts the holder: a shell that writes its pid and execs sleep, in new mount, UTS and network namespaces. */
  startHolder(): void {
    const pidfile = path.join(this.dir, "holder.pid");
    // setsid -f: unshare is not this process's child (its zombie would outlive a kill while
    // waitFor blocks the event loop that reaps children); init reaps it.
    const r = run(SETSID, ["-f", UNSHARE, "--mount", "--uts", "--net", "--propagation", "private", "--fork", "--", "/bin/sh", "-c", 'echo $$ > "$0"; exec /bin/sleep infinity', pidfile], {
      stdio: "ignore",
    });
    if (r.status !== 0) throw new Error(`host ${this.name}: setsid -f unshare: exit ${r.status}`);
    waitFor(`host ${this.name}'s holder`, 10_000, () => fs.existsSync(pidfile) && fs.readFileSync(pidfile, "utf8").endsWith("\n"));
    this.pid = Number(fs.readFileSync(pidfile, "utf8").trim());
    const stat = fs.readFileSync(`/proc/${this.pid}/stat`, "utf8");
    this.unsharePid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    this.netns = fs.readlinkSync(`/proc/${this.pid}/ns/net`);
    if (this.netns === fs.readlinkSync("/proc/self/ns/net")) throw new Error(`host ${this.name}: the holder shares the machine's network namespace`);
  }

  /**
   * The host's own directories on the machine: copies of /etc/libvirt and /etc/apparmor.d, the
   * skeleton (directories with their owners and modes, no files) of /var/lib/libvirt and
   * /var/log/libvirt, /var/cache/libvirt with the QEMU capabilities cache, the empty ones.
   */
  prepareDirs(): void {
    for (const d of ["etc.upper", "etc.work", "usr.upper", "usr.work", "var.upper", "var.work", "securityfs", "usr-lib-virt-aa-hook", "var-lib-virt-aa-hook", "var-cache-virt-aa-hook", "var-cache-apparmor"]) {
      fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    }
    run(CP, ["-a", "/etc/libvirt", path.join(this.dir, "etc-libvirt")]);
    run(CP, ["-a", "/etc/apparmor.d", path.join(this.dir, "etc-apparmor.d")]);
    // Images are the shared directory's; per-domain dirs and files are the machine's guests'.
    copySkeleton("/var/lib/libvirt", path.join(this.dir, "var-lib-libvirt"), () => false);
    copySkeleton("/var/log/libvirt", this.logDir, () => false);
    // libvirt keeps a probe's result while the emulator's and libvirtd's ctimes are unchanged
    // (qemu_capabilities.c, virQEMUCapsIsValid): the machine's cache saves each host ~6 s of probing.
    copySkeleton("/var/cache/libvirt", path.join(this.dir, "var-cache-libvirt"), (rel) => rel.startsWith("qemu/capabilities/"));
    // Guests of both hosts would share the machine's cgroup hierarchy (no cgroup namespace), and
    // an incoming guest gets the same cgroup name as on its source when the domain ids agree
    // (qemu-<id>-<name>): libvirt then cannot remove the source's (EBUSY). No cgroups for guests.
    // migration_address: an incoming migration (and its NBD server for --copy-storage-all)
    // listens on the veth address only (qemu_migration.c qemuMigrationDstPrepareAny).
    fs.appendFileSync(
      path.join(this.dir, "etc-libvirt", "qemu.conf"),
      `\n# test/fleet: hosts share the machine's cgroups\ncgroup_controllers = [ ]\nmigration_address = "${this.ip}"\n`,
    );
    const conf = path.join(this.dir, "etc-libvirt", "libvirtd.conf");
    fs.appendFileSync(
      conf,
      [
        "",
        "# test/fleet: this host's identity and its TCP listener on the veth only",
        "listen_tls = 0",
        "listen_tcp = 1",
        `listen_addr = "${this.ip}"`,
        'auth_tcp = "none"',
        `host_uuid = "${this.hostUuid}"`,
        "",
      ].join("\n"),
    );
    resetFakeSecurityfs(this.securityfs);
  }

  /** /run, the overlays, then the host's own directories and the shared storage over them. */
  mount(shared: string): void {
    const d = (s: string) => path.join(this.dir, s);
    this.execOk(HOSTNAME, [this.hostname]);
    this.execOk(MOUNT, ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]);
    for (const top of ["etc", "usr", "var"]) {
      this.execOk(MOUNT, ["-t", "overlay", "overlay", "-o", `lowerdir=/${top},upperdir=${d(`${top}.upper`)},workdir=${d(`${top}.work`)}`, `/${top}`]);
    }
    const binds: [string, string][] = [
      [d("etc-libvirt"), "/etc/libvirt"],
      [d("etc-apparmor.d"), "/etc/apparmor.d"],
      [d("usr-lib-virt-aa-hook"), "/usr/lib/virt-aa-hook"],
      [d("var-lib-libvirt"), "/var/lib/libvirt"],
      [shared, IMAGES],
      [this.logDir, "/var/log/libvirt"],
      [d("var-cache-libvirt"), "/var/cache/libvirt"],
      [d("var-lib-virt-aa-hook"), STATE_DIR],
      [d("var-cache-virt-aa-hook"), "/var/cache/virt-aa-hook"],
      [d("var-cache-apparmor"), "/var/cache/apparmor"],
    ];
    for (const [from, to] of binds) {
      this.execOk(MKDIR, ["-p", to]);
      this.execOk(MOUNT, ["--bind", from, to]);
    }
    this.execOk(MKDIR, ["-p", "/run/libvirt"]);
    // Both hosts' names resolve in each (libvirt looks its own up; the hosts file is the overlay's copy).
    fs.appendFileSync(this.path("/etc/hosts"), `\n# test/fleet\n192.0.2.1 ${PREFIX}a\n192.0.2.2 ${PREFIX}b\n`);
  }

  /** lo up, the veth end addressed and up. */
  network(): void {
    this.execOk(IP, ["link", "set", "lo", "up"]);
    this.execOk(IP, ["addr", "add", `${this.ip}/24`, "dev", this.ifname]);
    this.execOk(IP, ["link", "set", this.ifname, "up"]);
  }

  /** virtlogd and libvirtd, daemonized (their pid files in this host's /run); `waitReady` waits for libvirtd. */
  startDaemons(): void {
    this.execOk(VIRTLOGD, ["-d"]);
    this.execOk(LIBVIRTD, ["-d", "--listen"], { LIBVIRT_LOG_FILTERS: LOG_FILTERS, LIBVIRT_LOG_OUTPUTS: `1:file:/var/log/libvirt/libvirtd.log` });
  }

  /** libvirtd answers (it probes QEMU first when the seeded capabilities are not valid: ~6 s). */
  waitReady(): void {
    waitFor(`host ${this.name}'s libvirtd to answer`, 120_000, () => this.virsh("version").status === 0);
  }

  /** install/install.sh --reload, in this host. */
  install(): Run {
    return this.exec("/bin/bash", [path.join(REPO, "install/install.sh"), "--reload", "--node", process.execPath]);
  }

  /** The hook's config for this host (the system suite's test config, then `extra`). */
  writeConfig(extra: Record<string, string> = {}): void {
    fs.writeFileSync(this.path(CONFIG), testConfig(this.securityfs, extra), { mode: 0o644 });
  }

  writeRawConfig(text: string): void {
    fs.writeFileSync(this.path(CONFIG), text, { mode: 0o644 });
  }

  /** Waits for libvirtd's rescan of the hook directories after install's SIGHUP. */
  waitForHookScan(): void {
    const want = "Found hook script /etc/libvirt/hooks/qemu.d/virt-aa-hook";
    waitFor(`host ${this.name}'s libvirtd to say "${want}"`, 60_000, () => readFrom(this.libvirtdLog, 0).includes(want));
  }

  mark(): void {
    this.hookLogMark = sizeOf(this.hookLog);
    this.libvirtdLogMark = sizeOf(this.libvirtdLog);
  }

  resetSecurityfs(): void {
    resetFakeSecurityfs(this.securityfs);
  }
  replaced(): string {
    return fakeReplaced(this.securityfs).toString("latin1");
  }
  removed(): string {
    return fakeRemoved(this.securityfs);
  }

  /** This host's hook calls for a guest since the mark: "op exit". */
  hookOps(guest: string): string[] {
    return hookOps(guest, this.hookLogMark, this.hookLog);
  }
  hookSummaries(guest: string): HookSummary[] {
    return hookSummaries(this.hookLogMark, this.hookLog).filter((s) => s.guest === guest);
  }
  /** libvirtd's log since the mark. */
  libvirtdLogText(): string {
    return readFrom(this.libvirtdLog, this.libvirtdLogMark);
  }

  profile(uuid: string): string {
    return this.path(`${PROFILE_DIR}/libvirt-${uuid}`);
  }
  files(uuid: string): string {
    return this.path(`${PROFILE_DIR}/libvirt-${uuid}.files`);
  }
  record(uuid: string): string {
    return this.path(`${STATE_DIR}/${uuid}.json`);
  }

  /** The guest's QEMU log as this host's libvirt wrote it. */
  qemuLog(name: string): string {
    return readFrom(path.join(this.logDir, "qemu", `${name}.log`), 0);
  }

  diagnostics(): string {
    const hook = readFrom(this.hookLog, this.hookLogMark).split("\n").slice(-60).join("\n");
    const lvd = this.libvirtdLogText()
      .split("\n")
      .filter((l) => /hook|error|warn/i.test(l) && !/: qemuMonitor|QEMU_MONITOR_/.test(l))
      .slice(-40)
      .join("\n");
    return `\n----- host ${this.name}: hook log (this test) -----\n${hook || "(nothing)"}\n----- host ${this.name}: libvirtd log (this test: hook, error, warning lines) -----\n${lvd || "(nothing)"}`;
  }

  /** Stopping, first step: `virsh destroy` of every running guest, then SIGTERM to every other process of this host but the holder. */
  signalStop(): number[] {
    if (!this.netns) return [];
    if (this.pid && !pidGone(this.pid)) {
      const r = this.virsh("list", "--name");
      for (const n of r.stdout.split("\n").map((l) => l.trim()).filter(Boolean)) this.virsh("destroy", n);
    }
    // Daemons and QEMU first, then the holder: unshare then exits by itself.
    const others = pidsIn(this.netns).filter((p) => p !== this.pid && p !== this.unsharePid && p !== process.pid);
    for (const p of others) {
      try {
        process.kill(p, "SIGTERM");
      } catch {
        /* gone */
      }
    }
    return others;
  }

  /** Stopping, second step: waits for `others` (SIGKILL after 30 s), then the holder and unshare; the namespace must be empty. */
  reap(others: number[], problems: string[]): void {
    if (!this.netns) return;
    for (const p of [...others, this.pid, this.unsharePid]) {
      if (!p) continue;
      try {
        stopPid(p);
      } catch (err) {
        problems.push(`host ${this.name}: pid ${p}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    try {
      waitFor(`host ${this.name}'s namespace to empty`, 10_000, () => pidsIn(this.netns).length === 0);
    } catch {
      problems.push(`host ${this.name}: processes left in ${this.netns}: ${pidsIn(this.netns).join(" ")}`);
    }
  }
}

export class Fleet {
  readonly id = crypto.randomBytes(3).toString("hex");
  /** Scratch on the machine: both hosts' directories and the shared storage; 0755 so QEMU (libvirt-qemu) can reach images. */
  readonly tmp: string;
  /** The shared image storage, mounted at /var/lib/libvirt/images in both hosts. */
  readonly shared: string;
  readonly a: Host;
  readonly b: Host;
  /** Timings of the set-up steps, ms. */
  readonly timings: Record<string, number> = {};

  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
    fs.chmodSync(this.tmp, 0o755);
    this.shared = path.join(this.tmp, "images");
    // The machine's /var/lib/libvirt/images is root 0711: so is the shared one.
    fs.mkdirSync(this.shared, { mode: 0o711 });
    fs.chmodSync(this.shared, 0o711);
    this.a = new Host("a", "192.0.2.1", "vaah-fa", path.join(this.tmp, "host-a"));
    this.b = new Host("b", "192.0.2.2", "vaah-fb", path.join(this.tmp, "host-b"));
  }

  get hosts(): Host[] {
    return [this.a, this.b];
  }

  private step(name: string, f: () => void): void {
    const t0 = performance.now();
    f();
    this.timings[name] = Math.round(performance.now() - t0);
  }

  /** Both hosts up, virt-aa-hook installed in each, each able to reach the other's libvirtd. */
  up(): { a: Run; b: Run } {
    this.step("namespaces", () => {
      for (const h of this.hosts) {
        fs.mkdirSync(h.dir, { recursive: true });
        h.startHolder();
      }
      // Both ends created inside the hosts' namespaces: the pair never exists in the machine's.
      const r = run(IP, ["link", "add", this.a.ifname, "netns", String(this.a.pid), "type", "veth", "peer", "name", this.b.ifname, "netns", String(this.b.pid)]);
      if (r.status !== 0) throw new Error(`ip link add veth: ${r.stderr.trim()}`);
    });
    this.step("mounts", () => {
      for (const h of this.hosts) {
        h.prepareDirs();
        h.mount(this.shared);
        h.network();
      }
    });
    this.step("daemons", () => {
      // Both start before either is waited for: any probing runs side by side.
      for (const h of this.hosts) h.startDaemons();
      for (const h of this.hosts) h.waitReady();
      for (const [from, to] of [[this.a, this.b], [this.b, this.a]] as const) {
        const r = from.exec(VIRSH, ["-c", to.uri, "hostname"]);
        if (r.stdout.trim() !== to.hostname) throw new Error(`host ${from.name} cannot reach ${to.uri}: ${r.stderr.trim() || r.stdout.trim()}`);
      }
    });
    const installed: Partial<Record<"a" | "b", Run>> = {};
    this.step("install", () => {
      for (const h of this.hosts) {
        h.mark();
        installed[h.name] = h.install();
        if (installed[h.name]!.status === 0) h.waitForHookScan();
      }
    });
    return installed as { a: Run; b: Run };
  }

  /**
   * Both libvirtds probe the wrapper emulator's capabilities side by side (libvirt probes each
   * <emulator> path once and caches it; the wrapper passes a probe without -uuid straight to
   * QEMU): otherwise the first guest arriving in wrapper mode waits for it on each host in turn.
   */
  async probeWrapper(): Promise<void> {
    const t0 = performance.now();
    await Promise.all(
      this.hosts.map(
        (h) =>
          new Promise<void>((resolve, reject) => {
            const args = ["-t", String(h.pid), "-m", "-u", "-n", "--", VIRSH, "-c", URI, "domcapabilities", "--emulatorbin", WRAPPER, "--virttype", "qemu", "--arch", "x86_64"];
            const child = spawn(NSENTER, args, { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" } });
            let stderr = "";
            child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
            child.on("error", reject);
            child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`host ${h.name}: virsh domcapabilities --emulatorbin ${WRAPPER}: exit ${code}: ${stderr.trim()}`))));
          }),
      ),
    );
    this.timings["wrapper probe"] = Math.round(performance.now() - t0);
  }

  /** Writes the guest's XML into the scratch dir and defines it on `host`. */
  define(host: Host, g: GuestSpec): string {
    const file = path.join(this.tmp, `${g.name}.xml`);
    fs.writeFileSync(file, guestXml(g));
    host.virshOk("define", file);
    return file;
  }

  mark(): void {
    for (const h of this.hosts) h.mark();
  }

  diagnostics(): string {
    return `${this.a.diagnostics()}${this.b.diagnostics()}\n-----`;
  }

  /** Everything this run made is gone; problems are collected, not thrown. */
  teardown(): string[] {
    const problems: string[] = [];
    const t0 = performance.now();
    // Both hosts' daemons are told to stop before either is waited for.
    const signalled = this.hosts.map((h) => {
      try {
        return h.signalStop();
      } catch (err) {
        problems.push(`host ${h.name}: ${err instanceof Error ? err.message : String(err)}`);
        return [];
      }
    });
    this.hosts.forEach((h, i) => h.reap(signalled[i]!, problems));
    this.timings.teardown = Math.round(performance.now() - t0);
    try {
      fs.rmSync(this.tmp, { recursive: true, force: true });
    } catch (err) {
      problems.push(`rm ${this.tmp}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return problems;
  }
}
