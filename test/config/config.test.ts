import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_CONFIG, loadConfig, loadLayout, parseConfig } from "../../src/config.js";
import { Layout, LOCATION_DEFAULTS } from "../../src/layout.js";

const FILE = "/etc/libvirt/virt-aa-hook.conf";

describe("parseConfig", () => {
  it("is the defaults for an empty file or only comments", () => {
    expect(parseConfig("", FILE)).toEqual(DEFAULT_CONFIG);
    expect(parseConfig("# mode = \"off\"\n\n   # x\n", FILE)).toEqual(DEFAULT_CONFIG);
  });

  it("guest_mode: ignore by default; ignore, tighten, any; nothing else", () => {
    expect(parseConfig("", "c").guestMode).toBe("ignore");
    for (const v of ["ignore", "tighten", "any"] as const) expect(parseConfig(`guest_mode = "${v}"\n`, "c").guestMode).toBe(v);
    expect(() => parseConfig(`guest_mode = "complain"\n`, "c")).toThrow('cannot read config c: line 1: guest_mode: must be one of ignore, tighten, any, not "complain"');
  });

  it("reads every attach mode, helper included", () => {
    for (const attach of ["wrapper", "seclabel", "helper", "none"] as const) {
      expect(parseConfig(`attach = "${attach}"\n`, FILE).attach).toBe(attach);
      expect(parseConfig(`attach = ${attach}\n`, FILE).attach).toBe(attach);
    }
  });

  it("reads quoted and bare values, blanks around =, CRLF line ends", () => {
    const cfg = parseConfig(
      'mode = "complain"\r\nno_apparmor="compile-only"\n  started_check =  enforce \nlock_timeout = 7\nsubdomainfs = "/tmp/fs"\nrequire_attach = "yes"\nlog_file = ""\n',
      FILE,
    );
    expect(cfg.mode).toBe("complain");
    expect(cfg.noApparmor).toBe("compile-only");
    expect(cfg.startedCheck).toBe("enforce");
    expect(cfg.lockTimeout).toBe(7);
    expect(cfg.subdomainfs).toBe("/tmp/fs");
    expect(cfg.requireAttach).toBe(true);
    expect(cfg.logFile).toBe("");
    expect(cfg.parser).toBe("/usr/sbin/apparmor_parser");
  });

  const bad: [string, string][] = [
    ['mdoe = "enforce"', `cannot read config ${FILE}: line 2: mdoe: unknown key: did you mean mode?`],
    ["parser_timout = 10", `cannot read config ${FILE}: line 2: parser_timout: unknown key: did you mean parser_timeout?`],
    ["Log_Levle = debug", `cannot read config ${FILE}: line 2: Log_Levle: unknown key: did you mean log_level?`],
    // Too far from every key (2 edits from mode, a 4-letter key allows 1): the list, no guess.
    ['mood = "enforce"', `cannot read config ${FILE}: line 2: mood: unknown key (known: mode, no_apparmor, started_check,`],
    ['colour = "blue"', `cannot read config ${FILE}: line 2: colour: unknown key (known: mode, no_apparmor, started_check,`],
    ['mode = "enforcing"', `cannot read config ${FILE}: line 2: mode: must be one of enforce, complain, off, not "enforcing"`],
    ['mode = "enforce" # strict', `cannot read config ${FILE}: line 2: mode: expected key = "value" (one pair of double quotes, nothing after it)`],
    ["parser = usr/sbin/apparmor_parser", `cannot read config ${FILE}: line 2: parser: must be an absolute path, not "usr/sbin/apparmor_parser"`],
    ['cache_dir = "/var/../etc"', `cannot read config ${FILE}: line 2: cache_dir: must not contain ".."`],
    ["lock_timeout = 0", `cannot read config ${FILE}: line 2: lock_timeout: must be a whole number of seconds from 1 to 3600, not "0"`],
    ["lock_timeout = 1e3", `cannot read config ${FILE}: line 2: lock_timeout: must be a whole number`],
    ['require_attach = "true"', `cannot read config ${FILE}: line 2: require_attach: must be yes or no, not "true"`],
    ['attach = "divert"', `cannot read config ${FILE}: line 2: attach: must be one of wrapper, seclabel, helper, none, not "divert"`],
    ["just words", `cannot read config ${FILE}: line 2: expected key = "value"`],
    ['mode = "enforce"', `cannot read config ${FILE}: line 2: mode: set again (first set on line 1)`],
  ];
  it.each(bad)("rejects %j with the file, line and key", (line, message) => {
    const text = (line === 'mode = "enforce"' ? 'mode = "off"\n' : "# first line\n") + line + "\n";
    let err: unknown;
    try {
      parseConfig(text, FILE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message.slice(0, message.length)).toBe(message);
    if (message.endsWith("?")) expect((err as Error).message).toBe(message);
    expect((err as ConfigError).line).toBe(2);
  });
});

describe("loadConfig", () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-config-"));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it("uses the defaults when the file does not exist", () => {
    expect(loadConfig(new Layout(root))).toEqual(DEFAULT_CONFIG);
  });

  it("reads the file under the root", () => {
    fs.mkdirSync(path.join(root, "etc/libvirt"), { recursive: true });
    fs.writeFileSync(path.join(root, FILE), 'mode = "off"\n');
    expect(loadConfig(new Layout(root)).mode).toBe("off");
  });
});

describe("loadLayout: the config's locations flow into the layout", () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-layout-"));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it("is the default layout without a config file", () => {
    const { config, layout } = loadLayout(root);
    expect(config).toEqual(DEFAULT_CONFIG);
    expect(layout).toEqual(new Layout(root));
    expect(layout.profilesDir).toBe("/etc/apparmor.d/libvirt");
    expect(layout.profilePath("u")).toBe("/etc/apparmor.d/libvirt/libvirt-u");
  });

  it("moves the profiles with apparmor_dir, and the cache, log, template and the rest with their keys", () => {
    fs.mkdirSync(path.join(root, "etc/libvirt"), { recursive: true });
    fs.writeFileSync(
      path.join(root, FILE),
      [
        'apparmor_dir = "/srv/aa"',
        'cache_dir = "/srv/cache"',
        'log_file = ""',
        'template = "/srv/aa/libvirt/T"',
        'features_file = "/srv/features"',
        'subdomainfs = "/srv/fs"',
        'emulator_dir = "/opt/qemu/bin"',
        'parser = "/opt/aa/apparmor_parser"',
        "",
      ].join("\n"),
    );
    const { layout } = loadLayout(root);
    expect(layout.root).toBe(root);
    expect({
      apparmorDir: layout.apparmorDir,
      profilesDir: layout.profilesDir,
      filesPath: layout.filesPath("u"),
      cacheDir: layout.cacheDir,
      logFile: layout.logFile,
      template: layout.template,
      featuresFile: layout.featuresFile,
      subdomainfs: layout.subdomainfs,
      emulatorDir: layout.emulatorDir,
      parser: layout.parser,
    }).toEqual({
      apparmorDir: "/srv/aa",
      profilesDir: "/srv/aa/libvirt",
      filesPath: "/srv/aa/libvirt/libvirt-u.files",
      cacheDir: "/srv/cache",
      logFile: "",
      template: "/srv/aa/libvirt/T",
      featuresFile: "/srv/features",
      subdomainfs: "/srv/fs",
      emulatorDir: "/opt/qemu/bin",
      parser: "/opt/aa/apparmor_parser",
    });
    // The config file itself is a fact of the root: no config moves it.
    expect(layout.configPath).toBe(FILE);
    expect(layout.ownLocations).toEqual([
      FILE,
      "/var/lib/virt-aa-hook",
      "/run/virt-aa-hook",
      "/srv/cache",
      "/var/cache/virt-aa-hook",
      "/srv/aa",
      "/srv/aa/libvirt/T",
      "/srv/features",
      "/srv/fs",
      "/opt/qemu/bin",
      "/usr/lib/virt-aa-hook",
      "/usr/sbin/virt-aa-hook",
    ]);
  });

  it("the config's path defaults are the layout's", () => {
    for (const [key, value] of Object.entries(LOCATION_DEFAULTS)) {
      expect(DEFAULT_CONFIG[key as keyof typeof LOCATION_DEFAULTS]).toBe(value);
      expect(new Layout("/")[key as keyof typeof LOCATION_DEFAULTS]).toBe(value);
    }
  });

  it("a config that cannot be read is a ConfigError, as with loadConfig", () => {
    fs.mkdirSync(path.join(root, "etc/libvirt"), { recursive: true });
    fs.writeFileSync(path.join(root, FILE), 'apparmor_dir = "srv"\n');
    expect(() => loadLayout(root)).toThrow(`cannot read config ${FILE}: line 1: apparmor_dir: must be an absolute path, not "srv"`);
  });
});

describe("the shipped install/virt-aa-hook.conf", () => {
  const shipped = fs.readFileSync(new URL("../../install/virt-aa-hook.conf", import.meta.url), "utf8");

  it("parses to exactly the defaults", () => {
    expect(parseConfig(shipped, "install/virt-aa-hook.conf")).toEqual(DEFAULT_CONFIG);
  });

  it("documents every key, each as a commented default that parses to the same value", () => {
    const uncommented = shipped
      .split("\n")
      .map((l) => (/^#[a-z_]+ = /.test(l) ? l.slice(1) : l))
      .join("\n");
    expect(parseConfig(uncommented, "uncommented")).toEqual(DEFAULT_CONFIG);
    const keys = [...uncommented.matchAll(/^([a-z_]+) = /gm)].map((m) => m[1]).sort();
    expect(keys).toEqual(
      ["apparmor_dir", "attach", "cache_dir", "emulator_dir", "features_file", "lock_timeout", "log_file", "log_level", "mode", "no_apparmor",
        "parser", "parser_timeout", "reconnect_failure", "require_attach", "started_check", "subdomainfs", "template", "guest_mode",
        "compiled_store", "compiled_store_max_size", "compiled_store_max_age"].sort(),
    );
  });

  it("reads the same mode with a POSIX sh while-read loop as the emulator wrapper does", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-conf-sh-"));
    try {
      const conf = path.join(dir, "c.conf");
      fs.writeFileSync(conf, shipped.replace('#mode = "enforce"', 'mode = "complain"'));
      const script = `while IFS= read -r line || [ -n "$line" ]; do
        case $line in \\#*) continue ;; esac
        key=\${line%%=*}; [ "$key" != "$line" ] || continue
        value=\${line#*=}
        key=\${key#"\${key%%[! 	]*}"}; key=\${key%"\${key##*[! 	]}"}
        value=\${value#"\${value%%[! 	]*}"}; value=\${value%"\${value##*[! 	]}"}
        value=\${value#\\"}; value=\${value%\\"}
        [ "$key" = mode ] && printf '%s' "$value"
      done < "$1"`;
      const out = execFileSync("/bin/sh", ["-c", script, "sh", conf], { env: { LC_ALL: "C" } }).toString();
      expect(out).toBe("complain");
      expect(parseConfig(fs.readFileSync(conf, "utf8"), conf).mode).toBe("complain");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
