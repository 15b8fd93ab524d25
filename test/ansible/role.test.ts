/**
 * The Ansible role (deploy/ansible/roles/virt_aa_hook) run by the real ansible-playbook (Debian's
 * ansible-core) against this machine with a local connection: it installs the Debian package
 * (built once here, by `npm run deb`'s script), writes the config, adopts a guest of a real
 * libvirtd (test/system/lab.ts), runs doctor; a second run changes nothing; a running guest that
 * is not confined (this kernel has no AppArmor: none is) fails the play naming it; a bad variable
 * fails the play before anything changes; state=absent removes the package, twice, then purges.
 * Besides, the role's checks and template alone (test/ansible/render.yml) on a set of cases: the
 * config each accepted case writes, byte for byte, read back by the real bundle's parser; the
 * message for each refused one, and the project's parser refusing the same value.
 *
 * It changes this machine (dpkg, /etc/libvirt, libvirtd), so it runs only with
 * VIRT_AA_HOOK_ANSIBLE=1 (or CI=true), as root, in its own vitest project after "package", and
 * puts everything back: /etc/libvirt, /etc/apparmor.d, /usr/lib/virt-aa-hook, ... and the dpkg
 * database are compared with their state before, entry by entry.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFIG_KEYS, parseConfig, type Config } from "../../src/config.js";
import { FEATURES, HOOK_LINK, Lab, PREFIX, REPO, randomUuid, run, snapshot, virsh, virshOk } from "../system/lab.js";

const ENABLED = process.env.VIRT_AA_HOOK_ANSIBLE === "1" || process.env.CI === "true";
const HOW = "installs the Debian package on this machine with ansible-playbook and starts libvirtd: opt in with VIRT_AA_HOOK_ANSIBLE=1 (or CI=true)";
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { version: string }).version;
const CONFIG = "/etc/libvirt/virt-aa-hook.conf";
const BUNDLE = path.join(REPO, "dist/virt-aa-hook.cjs");
const ROLE = path.join(REPO, "deploy/ansible/roles/virt_aa_hook");
/** Everything the package, install.sh and the role touch. */
const WATCHED = ["/etc/libvirt", "/etc/apparmor.d", "/etc/logrotate.d", "/usr/lib/virt-aa-hook", "/usr/lib/libvirt", "/usr/sbin/virt-aa-hook", "/var/lib/virt-aa-hook", "/usr/share/virt-aa-hook"];
const HEADER = fs
  .readFileSync(path.join(ROLE, "templates/virt-aa-hook.conf.j2"), "utf8")
  .split("\n")
  .filter((l) => l.startsWith("#"))
  .map((l) => `${l}\n`)
  .join("");
const MIN = 60_000;
/** Seconds per phase, printed at the end (the CI budget for this suite is 100 s). */
const timings: string[] = [];
async function timed<T>(what: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings.push(`${what} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** A program by absolute path, no shell, fixed environment; resolves when it exits. */
function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: REPO, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C.UTF-8", ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ status: code, stdout, stderr }));
  });
}

/** Everything a run printed: the message of a failed expectation. */
const said = (r: Run) => `${r.stdout}\n----- stderr -----\n${r.stderr}`;

/** The one host's counters from the PLAY RECAP. */
function recap(out: string, host = "localhost"): Record<string, number> {
  const line = out.split("\n").find((l) => l.startsWith(`${host} `) && l.includes(" ok="));
  if (!line) throw new Error(`no PLAY RECAP line for ${host} in:\n${out}`);
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

/** Names of the tasks that reported "changed" (the line after each TASK/RUNNING HANDLER header). */
function changedTasks(out: string): string[] {
  const names: string[] = [];
  let task = "";
  for (const line of out.split("\n")) {
    const m = /^(?:TASK|RUNNING HANDLER) \[(?:virt_aa_hook : )?(.*)\] \**$/.exec(line);
    if (m) task = m[1]!;
    else if (line.startsWith("changed: ")) names.push(task);
  }
  return names;
}

const dpkgStatus = () => run("/usr/bin/dpkg-query", ["-W", "-f", "${db:Status-Status} ${Version}", "virt-aa-hook"]).stdout;
/** Every package dpkg knows, with its state and version: the dpkg database's state to compare. */
const dpkgAll = () => run("/usr/bin/dpkg-query", ["-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\n"]).stdout;

/** The bundle's own parser on a config text: doctor's first line for a root holding it. */
function bundleReads(text: string, dir: string): string {
  fs.mkdirSync(path.join(dir, "etc/libvirt"), { recursive: true });
  fs.writeFileSync(path.join(dir, "etc/libvirt/virt-aa-hook.conf"), text);
  return run(process.execPath, [BUNDLE, "doctor", "--root", dir]).stdout.split("\n")[0]!;
}

/** Render cases: inventory host -> its variables, and what the role must make of them. */
interface Accepted {
  vars: Record<string, unknown>;
  /** The config lines after the header. */
  lines: string[];
  /** Fields of the parsed Config that differ from the defaults. */
  parsed: Partial<Config>;
}
interface Refused {
  vars: Record<string, unknown>;
  error: string;
}
/** A value the role must refuse: its message, and the same value as a config line, which the project's parser must refuse too. */
interface BadValue {
  key: string;
  value: unknown;
  problem: string;
  line: string;
}
const ACCEPTED: Record<string, Accepted> = {
  nothing: { vars: {}, lines: [], parsed: {} },
  // Every key, each with a value other than its default where it has one, in the YAML types an
  // admin writes (a bare off is false, numbers bare or quoted, yes/no as booleans).
  every_key: {
    vars: {
      virt_aa_hook_mode: false,
      virt_aa_hook_no_apparmor: "compile-only",
      virt_aa_hook_started_check: "enforce",
      virt_aa_hook_reconnect_failure: "fail",
      virt_aa_hook_parser: "/opt/aa/apparmor_parser",
      virt_aa_hook_features_file: "/usr/share/apparmor-features/features",
      virt_aa_hook_cache_dir: "/var/cache/vaah cache",
      virt_aa_hook_template: "/etc/apparmor.d/libvirt/TEMPLATE.mine",
      virt_aa_hook_apparmor_dir: "/srv/apparmor.d",
      virt_aa_hook_subdomainfs: "/run/fake-securityfs",
      virt_aa_hook_lock_timeout: "7",
      virt_aa_hook_parser_timeout: 3600,
      virt_aa_hook_log_level: "debug",
      virt_aa_hook_log_file: "",
      virt_aa_hook_attach: "seclabel",
      virt_aa_hook_require_attach: true,
      virt_aa_hook_emulator_dir: "/opt/qemu/bin",
      virt_aa_hook_guest_mode: "tighten",
      virt_aa_hook_compiled_store: false,
      virt_aa_hook_compiled_store_max_size: 65536,
      virt_aa_hook_compiled_store_max_age: 1,
    },
    lines: [
      'mode = "off"',
      'no_apparmor = "compile-only"',
      'started_check = "enforce"',
      'reconnect_failure = "fail"',
      'parser = "/opt/aa/apparmor_parser"',
      'features_file = "/usr/share/apparmor-features/features"',
      'cache_dir = "/var/cache/vaah cache"',
      'template = "/etc/apparmor.d/libvirt/TEMPLATE.mine"',
      'apparmor_dir = "/srv/apparmor.d"',
      'subdomainfs = "/run/fake-securityfs"',
      'lock_timeout = "7"',
      'parser_timeout = "3600"',
      'log_level = "debug"',
      'log_file = ""',
      'attach = "seclabel"',
      'require_attach = "yes"',
      'emulator_dir = "/opt/qemu/bin"',
      'guest_mode = "tighten"',
      'compiled_store = "no"',
      'compiled_store_max_size = "65536"',
      'compiled_store_max_age = "1"',
    ],
    parsed: {
      mode: "off",
      noApparmor: "compile-only",
      startedCheck: "enforce",
      reconnectFailure: "fail",
      parser: "/opt/aa/apparmor_parser",
      featuresFile: "/usr/share/apparmor-features/features",
      cacheDir: "/var/cache/vaah cache",
      template: "/etc/apparmor.d/libvirt/TEMPLATE.mine",
      apparmorDir: "/srv/apparmor.d",
      subdomainfs: "/run/fake-securityfs",
      lockTimeout: 7,
      parserTimeout: 3600,
      logLevel: "debug",
      logFile: "",
      attach: "seclabel",
      requireAttach: true,
      emulatorDir: "/opt/qemu/bin",
      guestMode: "tighten",
      compiledStore: false,
      compiledStoreMaxSize: 65536,
      compiledStoreMaxAge: 1,
    },
  },
  // absent: adopt needs no attach mode (nothing is adopted then).
  absent_with_adopt: { vars: { virt_aa_hook_state: "absent", virt_aa_hook_adopt: ["web1"] }, lines: [], parsed: {} },
  // null is "not set": the key is left out. Strings "yes"/"no" as the parser spells them.
  nulls_and_strings: {
    vars: { virt_aa_hook_attach: null, virt_aa_hook_mode: "enforce", virt_aa_hook_require_attach: "no", virt_aa_hook_compiled_store: "yes" },
    lines: ['mode = "enforce"', 'require_attach = "no"', 'compiled_store = "yes"'],
    parsed: {},
  },
};
const must = (what: string) => `cannot configure virt-aa-hook: ${what}`;
/** One bad value per key kind and rule, in the key table's order (the order the role reports them in). */
const BAD_VALUES: BadValue[] = [
  { key: "mode", value: true, problem: "must be one of enforce, complain, off, not true", line: 'mode = "on"' },
  { key: "parser", value: "usr/sbin/apparmor_parser", problem: 'must be an absolute path, not "usr/sbin/apparmor_parser"', line: 'parser = "usr/sbin/apparmor_parser"' },
  { key: "cache_dir", value: "", problem: 'must be an absolute path, not ""', line: 'cache_dir = ""' },
  { key: "template", value: "/etc/a\tb", problem: 'must not contain a double quote or a control character: "/etc/a\\tb"', line: 'template = "/etc/a\tb"' },
  { key: "subdomainfs", value: '/run/a"b', problem: 'must not contain a double quote or a control character: "/run/a\\"b"', line: 'subdomainfs = "/run/a"b"' },
  { key: "lock_timeout", value: 0, problem: "must be a whole number from 1 to 3600, not 0", line: 'lock_timeout = "0"' },
  { key: "parser_timeout", value: "4", problem: 'must be a whole number from 5 to 3600, not "4"', line: 'parser_timeout = "4"' },
  { key: "log_level", value: false, problem: "must be one of error, warn, info, debug, not false", line: 'log_level = "off"' },
  { key: "log_file", value: "/var/log/../x", problem: 'must not contain "..": "/var/log/../x"', line: 'log_file = "/var/log/../x"' },
  { key: "attach", value: "sometimes", problem: 'must be one of wrapper, seclabel, helper, none, not "sometimes"', line: 'attach = "sometimes"' },
  { key: "require_attach", value: "true", problem: 'must be yes or no (or a boolean), not "true"', line: 'require_attach = "true"' },
  { key: "emulator_dir", value: 7, problem: "must be a path (a string), not 7", line: 'emulator_dir = "7"' },
  { key: "compiled_store_max_size", value: 65537, problem: "must be a whole number from 1 to 65536, not 65537", line: 'compiled_store_max_size = "65537"' },
  { key: "compiled_store_max_age", value: 1.5, problem: "must be a whole number from 1 to 3650, not 1.5", line: 'compiled_store_max_age = "1.5"' },
];
const ADOPT_NEEDS_ATTACH = "virt_aa_hook_adopt: needs virt_aa_hook_attach = wrapper, seclabel or helper (virt-aa-hook adopt refuses attach = none)";
const REFUSED: Record<string, Refused> = {
  // Every bad value at once: the role reports each, so one case checks them all.
  bad_values: {
    vars: { ...Object.fromEntries(BAD_VALUES.map((b) => [`virt_aa_hook_${b.key}`, b.value])), virt_aa_hook_adopt: ["web1"] },
    error: must([...BAD_VALUES.map((b) => `virt_aa_hook_${b.key}: ${b.problem}`), ADOPT_NEEDS_ATTACH].join("; ")),
  },
  adopt_without_attach: { vars: { virt_aa_hook_adopt: ["web1"] }, error: must(ADOPT_NEEDS_ATTACH) },
  adopt_dash: {
    vars: { virt_aa_hook_attach: "wrapper", virt_aa_hook_adopt: ["-x"] },
    error: must('virt_aa_hook_adopt: "-x": virt-aa-hook adopt takes no domain name starting with "-"'),
  },
};
const ROLE_VARS_MESSAGE =
  'cannot run role virt_aa_hook: virt_aa_hook_state must be present or absent; virt_aa_hook_deb, _version, _connect strings; virt_aa_hook_adopt and virt_aa_hook_doctor_fail_on a list of names or "all"; virt_aa_hook_doctor, _undo_adoption, _purge, _force_remove booleans (docs/ansible.md)';
const REFUSED_ROLE: Record<string, Refused> = {
  state_gone: { vars: { virt_aa_hook_state: "gone" }, error: ROLE_VARS_MESSAGE },
  adopt_string: { vars: { virt_aa_hook_adopt: "web1" }, error: ROLE_VARS_MESSAGE },
  purge_string: { vars: { virt_aa_hook_purge: "yes please" }, error: ROLE_VARS_MESSAGE },
};

if (!ENABLED) {
  describe("the Ansible role on this machine", () => {
    it.skip(`skipped: ${HOW}`, () => {});
  });
} else
  describe.sequential("the Ansible role on this machine: ansible-playbook, local connection", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-ansible-"));
    const deb = path.join(tmp, `virt-aa-hook_${VERSION}_all.deb`);
    const renderOut = path.join(tmp, "render");
    // Ansible's own files (~/.ansible/tmp, its local temp) go to our directory, not root's home.
    const ansibleEnv = {
      HOME: tmp,
      ANSIBLE_HOME: path.join(tmp, "ansible-home"),
      ANSIBLE_LOCAL_TEMP: path.join(tmp, "ansible-local"),
      ANSIBLE_REMOTE_TEMP: path.join(tmp, "ansible-remote"),
      ANSIBLE_ROLES_PATH: path.join(REPO, "deploy/ansible/roles"),
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_RETRY_FILES_ENABLED: "0",
      ANSIBLE_PYTHON_INTERPRETER: "/usr/bin/python3",
      // One process per module instead of mkdir/chmod/run/rm through /bin/sh: the role is the same.
      ANSIBLE_PIPELINING: "1",
      ANSIBLE_CONFIG: path.join(tmp, "ansible.cfg"),
    };
    const playbook = (book: string, args: string[]) => runAsync("/usr/bin/ansible-playbook", [book, ...args], ansibleEnv);
    /** The role on this machine (test/ansible/play.yml) with these variables as extra vars (typed JSON). */
    const role = (label: string, vars: Record<string, unknown>) => {
      const file = path.join(tmp, `vars-${Date.now()}.json`);
      fs.writeFileSync(file, JSON.stringify(vars));
      return timed(`role: ${label}`, () => playbook(path.join(REPO, "test/ansible/play.yml"), ["-i", "localhost,", "-e", `@${file}`]));
    };
    let lab: Lab | undefined;
    let before: string[];
    let dpkgBefore: string;
    let render: Run;
    let badRun: Run;
    let afterBad: string[];
    let syntax: Run;
    let results: Record<string, { conf?: string; error?: string }> = {};
    const guest = () => `${PREFIX}${lab!.id}-ans`;
    const uuid = randomUuid();
    let vars: Record<string, unknown>;
    const expectedConfig = (logLevel: string) =>
      `${HEADER}mode = "complain"\nfeatures_file = "${FEATURES}"\nsubdomainfs = "${lab!.securityfs}"\nlog_level = "${logLevel}"\nattach = "wrapper"\n`;

    beforeAll(async () => {
      if (process.getuid?.() !== 0) throw new Error("the ansible suite needs root (it installs a package)");
      if (dpkgStatus() !== "") throw new Error(`virt-aa-hook is already known to dpkg here (${dpkgStatus()}): this suite installs and purges it, so it will not run`);
      if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} missing: npm run build first`);
      fs.writeFileSync(ansibleEnv.ANSIBLE_CONFIG, "[defaults]\n");
      before = snapshot(WATCHED);
      dpkgBefore = dpkgAll();
      // What needs nothing installed runs side by side: the package build, the render cases, the
      // role with a bad variable (it must stop before touching anything), the example's syntax.
      fs.mkdirSync(renderOut);
      const hosts: Record<string, Record<string, unknown>> = {};
      for (const [name, c] of Object.entries({ ...ACCEPTED, ...REFUSED, ...REFUSED_ROLE })) hosts[name] = c.vars;
      const inventory = path.join(tmp, "render-inventory.json");
      fs.writeFileSync(inventory, JSON.stringify({ all: { vars: { ansible_connection: "local", out: renderOut }, hosts } }));
      const siteInventory = path.join(tmp, "site-inventory.ini");
      fs.writeFileSync(siteInventory, "[hypervisors]\nlocalhost ansible_connection=local\n");
      const build = runAsync(process.execPath, ["packaging/deb/build.mjs"], { VIRT_AA_HOOK_DEB_OUT: tmp });
      [render, badRun, syntax] = await timed("render + bad variable + syntax check (beside the build)", () => Promise.all([
        playbook(path.join(REPO, "test/ansible/render.yml"), ["-i", inventory]),
        role("bad variable", { virt_aa_hook_deb: deb, virt_aa_hook_attach: "sometimes", virt_aa_hook_adopt: "all" }),
        playbook(path.join(REPO, "deploy/ansible/site.yml"), ["-i", siteInventory, "--syntax-check"]),
      ]));
      afterBad = snapshot(WATCHED);
      if (render.status === 0) results = JSON.parse(fs.readFileSync(path.join(renderOut, "results.json"), "utf8")) as typeof results;
      const built = await timed("package build (rest)", () => build);
      expect(built.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("deb: warning:"))).toEqual([]);
      expect(built.status).toBe(0);
      // A real libvirtd with one defined (stopped) guest.
      lab = new Lab();
      await timed("libvirtd start", () => lab!.startDaemons());
      lab.define({ name: guest(), uuid, disks: [] });
      vars = {
        virt_aa_hook_deb: deb,
        virt_aa_hook_attach: "wrapper",
        // No AppArmor in this kernel: the wrapper runs QEMU unconfined only in complain mode, and
        // the hook loads into the lab's fake securityfs.
        virt_aa_hook_mode: "complain",
        virt_aa_hook_subdomainfs: lab.securityfs,
        virt_aa_hook_features_file: FEATURES,
        virt_aa_hook_log_level: "debug",
        virt_aa_hook_adopt: [guest()],
      };
    }, 10 * MIN);

    afterAll(() => {
      const t0 = performance.now();
      const problems: string[] = [];
      if (lab) {
        virsh("destroy", guest());
        // Whatever a failure left: the package (forced: a guest may still be adopted), then the lab.
        if (dpkgStatus() !== "") {
          const r = run("/usr/bin/dpkg", ["-P", "virt-aa-hook"], { env: { VIRT_AA_HOOK_FORCE: "1", DEBIAN_FRONTEND: "noninteractive" } });
          if (r.status !== 0) problems.push(`dpkg -P: ${r.stderr.trim()}`);
        }
        problems.push(...lab.teardown());
      }
      fs.rmSync(tmp, { recursive: true, force: true });
      if (before) {
        const now = snapshot(WATCHED);
        const changed = [...now.filter((l) => !before.includes(l)), ...before.filter((l) => !now.includes(l))];
        if (changed.length > 0) problems.push(`not as before: ${changed.join(", ")}`);
        if (dpkgAll() !== dpkgBefore) problems.push("the dpkg database is not as before");
      }
      timings.push(`cleanup ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      console.log(`ansible suite, seconds per phase:\n  ${timings.join("\n  ")}`);
      if (problems.length > 0) throw new Error(`cleanup: ${problems.join("; ")}`);
    }, 5 * MIN);

    it("the example playbook deploy/ansible/site.yml passes ansible-playbook --syntax-check", () => {
      expect(syntax.stderr).toBe("");
      expect(syntax.status).toBe(0);
    });

    it("render: every accepted case's config, byte for byte; the bundle's parser reads it; every key the project knows is covered", () => {
      expect(render.status, said(render)).toBe(0);
      for (const [name, c] of Object.entries(ACCEPTED)) {
        const text = results[name]?.conf ?? "";
        expect(results[name], name).toEqual({ conf: HEADER + c.lines.map((l) => `${l}\n`).join("") });
        expect(bundleReads(text, path.join(tmp, `root-${name}`)), name).toMatch(/^ok {4}config: \/etc\/libvirt\/virt-aa-hook\.conf: /);
        const parsed = parseConfig(text, CONFIG);
        expect(parsed, name).toEqual({ ...parseConfig("", CONFIG), ...c.parsed });
      }
      // The role's key table is the parser's, in its order.
      expect(ACCEPTED.every_key!.lines.map((l) => l.split(" ")[0])).toEqual(CONFIG_KEYS);
    });

    it("render: every refused case's message names each bad variable; the project's parser refuses each bad value too", () => {
      for (const [name, c] of Object.entries({ ...REFUSED, ...REFUSED_ROLE })) expect(results[name], name).toEqual({ error: c.error });
      for (const b of BAD_VALUES) expect(() => parseConfig(`${b.line}\n`, CONFIG), b.key).toThrow(/cannot read config/);
    });

    it("a bad variable (attach = sometimes) fails the play before anything changes", () => {
      expect(badRun.status).toBe(2);
      expect(badRun.stdout).toContain(must('virt_aa_hook_attach: must be one of wrapper, seclabel, helper, none, not \\"sometimes\\"'));
      expect(recap(badRun.stdout)).toMatchObject({ changed: 0, failed: 1 });
      expect(afterBad).toEqual(before);
      expect(dpkgStatus()).toBe("");
    });

    it("present, first run: the package installed, the config written, the guest adopted, doctor passes", async () => {
      const r = await role("present, first run", vars);
      expect(r.status, said(r)).toBe(0);
      expect(r.stderr).toBe("");
      expect(recap(r.stdout)).toMatchObject({ changed: 3, failed: 0 });
      expect(changedTasks(r.stdout)).toEqual([
        "Write /etc/libvirt/virt-aa-hook.conf",
        `Install virt-aa-hook from ${deb}`,
        `Adopt domains (${guest()})`,
      ]);
      // The package installed it, the handler was not needed (postinst read the new config).
      expect(dpkgStatus()).toBe(`installed ${VERSION}`);
      expect(r.stdout).toMatch(/RUNNING HANDLER \[virt_aa_hook : Run the package's configure step again\] \**\nskipping: \[localhost\]/);
      expect(fs.readFileSync(CONFIG, "utf8")).toBe(expectedConfig("debug"));
      expect((fs.statSync(CONFIG).mode & 0o7777).toString(8)).toBe("644");
      expect(fs.readlinkSync(HOOK_LINK)).toBe("/usr/lib/virt-aa-hook/qemu-hook");
      expect(virshOk("dumpxml", "--inactive", guest())).toContain("<emulator>/usr/lib/virt-aa-hook/bin/qemu-system-x86_64</emulator>");
      // Doctor ran; the checks the play fails on passed (kernel AppArmor fails here: not one of them).
      expect(r.stdout).toContain('"ok    config: /etc/libvirt/virt-aa-hook.conf: attach = wrapper, mode = complain"');
      expect(r.stdout).toContain('"ok    running guests: no guest is running"');
      expect(r.stdout).toContain('"FAIL  kernel AppArmor: not enabled (/sys/kernel/security/apparmor/profiles missing): no guest can be confined"');
    }, 5 * MIN);

    it("present, second run with the same variables: changed=0", async () => {
      const config = fs.readFileSync(CONFIG);
      const r = await role("present, second run", vars);
      expect(r.status, said(r)).toBe(0);
      expect(r.stderr).toBe("");
      expect(recap(r.stdout)).toMatchObject({ changed: 0, failed: 0 });
      expect(changedTasks(r.stdout)).toEqual([]);
      expect(fs.readFileSync(CONFIG)).toEqual(config);
      expect(dpkgStatus()).toBe(`installed ${VERSION}`);
    }, 5 * MIN);

    it("negative control: a running guest that is not confined fails the play, naming it; a changed config reruns the package's configure step", async () => {
      lab!.mark();
      virshOk("start", guest());
      // An admin edits the guest's profile while it runs: release keeps it, and so does removal.
      const profile = `/etc/apparmor.d/libvirt/libvirt-${uuid}`;
      fs.appendFileSync(profile, "# edited by the admin\n");
      const edited = fs.readFileSync(profile);
      const r = await role("present, guest running (negative control)", { ...vars, virt_aa_hook_log_level: "info" });
      expect(r.status, said(r)).toBe(2);
      expect(recap(r.stdout)).toMatchObject({ changed: 1, failed: 1 });
      expect(changedTasks(r.stdout)).toEqual(["Write /etc/libvirt/virt-aa-hook.conf"]);
      expect(fs.readFileSync(CONFIG, "utf8")).toBe(expectedConfig("info"));
      // The handler ran postinst (install.sh: nothing to do) and reported no change.
      expect(r.stdout).toMatch(/RUNNING HANDLER \[virt_aa_hook : Run the package's configure step again\] \**\nok: \[localhost\]/);
      expect(r.stdout).toContain(`"msg": "virt-aa-hook doctor: running guests: not confined: ${guest()} (unknown)"`);
      virshOk("destroy", guest());
      expect(fs.readFileSync(profile)).toEqual(edited);
    }, 5 * MIN);

    it("absent: adoption undone, the package removed, the config and the admin's profile kept; a second run changes nothing", async () => {
      const config = fs.readFileSync(CONFIG);
      const profile = `/etc/apparmor.d/libvirt/libvirt-${uuid}`;
      const edited = fs.readFileSync(profile);
      const r = await role("absent", { virt_aa_hook_state: "absent" });
      expect(r.status, said(r)).toBe(0);
      expect(r.stderr).toBe("");
      expect(recap(r.stdout)).toMatchObject({ changed: 2, failed: 0 });
      expect(changedTasks(r.stdout)).toEqual(["Undo adoption of every domain", "Remove virt-aa-hook"]);
      expect(dpkgStatus()).toBe(`config-files ${VERSION}`);
      expect(virshOk("dumpxml", "--inactive", guest())).toContain("<emulator>/usr/bin/qemu-system-x86_64</emulator>");
      expect(fs.existsSync(HOOK_LINK)).toBe(false);
      expect(fs.readFileSync(CONFIG)).toEqual(config);
      expect(fs.readFileSync(profile)).toEqual(edited);
      const again = await role("absent, second run", { virt_aa_hook_state: "absent" });
      expect(again.status, said(again)).toBe(0);
      expect(again.stderr).toBe("");
      expect(recap(again.stdout)).toMatchObject({ changed: 0, failed: 0 });
      expect(dpkgStatus()).toBe(`config-files ${VERSION}`);
    }, 5 * MIN);

    it("absent with purge: the config goes too, the admin's profile stays; every watched path is as before once the lab is gone", async () => {
      const profile = `/etc/apparmor.d/libvirt/libvirt-${uuid}`;
      const edited = fs.readFileSync(profile);
      const r = await role("absent, purge", { virt_aa_hook_state: "absent", virt_aa_hook_purge: true });
      expect(r.status, said(r)).toBe(0);
      expect(r.stderr).toBe("");
      expect(recap(r.stdout)).toMatchObject({ changed: 1, failed: 0 });
      expect(changedTasks(r.stdout)).toEqual(["Remove virt-aa-hook (purge)"]);
      expect(dpkgStatus()).toBe("");
      expect(fs.existsSync(CONFIG)).toBe(false);
      expect(fs.existsSync("/var/lib/virt-aa-hook")).toBe(false);
      expect(fs.readFileSync(profile)).toEqual(edited);
      // What differs from before now is the lab's (qemu.conf's security_driver, its guest's
      // definition) and the admin's profile, which is the admin's to remove (the lab removes its
      // guests' profiles; afterAll compares everything with the state before once it is gone).
      const now = snapshot(WATCHED);
      const differs = [...new Set([...now.filter((l) => !before.includes(l)), ...before.filter((l) => !now.includes(l))].map((l) => l.split(" ")[0]))].sort();
      expect(differs).toEqual([profile, "/etc/libvirt/qemu.conf", `/etc/libvirt/qemu/${guest()}.xml`].sort());
    }, 5 * MIN);
  });
