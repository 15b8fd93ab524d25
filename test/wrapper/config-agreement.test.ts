import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFIG_KEYS, ConfigError, DEFAULT_CONFIG, parseConfig } from "../../src/config.js";

// The hook (src/config.ts) and the emulator wrapper (hooks/qemu-wrapper, sh) read the same
// /etc/libvirt/virt-aa-hook.conf. Each file below goes to both; what each read must be the same:
// the same error message, or the same mode and emulator_dir. The wrapper is run for real (a
// symlink named like an emulator, a stand-in QEMU that prints its own path), so what it read is
// what it does: the emulator it execs, and what it does about a profile that is not loaded.
const WRAPPER = path.resolve("hooks/qemu-wrapper");
const UUID = "3e5a1c2b-0d4f-4a6b-9c8d-7e6f5a4b3c2d";
// A name no real QEMU has: a file that leaves emulator_dir at /usr/bin must not start a real one.
const EMULATOR = "qemu-system-vaahtest";

let dir: string;
beforeAll(() => {
  expect(fs.existsSync(`${DEFAULT_CONFIG.emulatorDir}/${EMULATOR}`)).toBe(false);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-wrapper-config-"));
  for (const d of ["qemu", "qemu2"]) {
    fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, d, EMULATOR), '#!/bin/sh\nprintf "%s\\n" "$0"\n', { mode: 0o755 });
  }
  fs.mkdirSync(path.join(dir, "bin"));
  fs.symlinkSync(WRAPPER, path.join(dir, "bin", EMULATOR));
  fs.writeFileSync(path.join(dir, "profiles"), "libvirt-00000000-0000-0000-0000-000000000000 (enforce)\n");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Read = { error: string } | { mode: string; emulatorDir: string };

/** What src/config.ts reads from `text`. */
function hookReads(text: string, file: string): Read {
  try {
    const cfg = parseConfig(text, file);
    return { mode: cfg.mode, emulatorDir: cfg.emulatorDir.replace(/\/$/, "") };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { error: err.message };
  }
}

/** What hooks/qemu-wrapper reads from the file: told by what it does. */
function wrapperReads(file: string): Read {
  const env = { LC_ALL: "C", VIRT_AA_HOOK_CONF: file, VIRT_AA_HOOK_PROFILES: path.join(dir, "profiles"), VIRT_AA_HOOK_ATTR_EXEC: path.join(dir, "attr") };
  const run = (args: string[]) => spawnSync(path.join(dir, "bin", EMULATOR), args, { env, encoding: "utf8" });
  const error = (r: ReturnType<typeof run>) => /^virt-aa-hook wrapper: error: (cannot read config .*)\n$/.exec(r.stderr)?.[1];
  // A capability probe (no -uuid) execs the real emulator: emulator_dir.
  const probe = run(["-nodefaults"]);
  const probeError = error(probe);
  if (probeError !== undefined) {
    expect(probe.status).toBe(1);
    return { error: probeError };
  }
  // The default /usr/bin has no QEMU on a test machine: the wrapper names the one it looked for,
  // and stops there (the mode is not reached).
  const missing = /^virt-aa-hook wrapper: error: (.*)\/qemu-system-vaahtest: real emulator not found or not executable/.exec(probe.stderr);
  if (missing) return { mode: "(no emulator)", emulatorDir: missing[1]! };
  expect(probe.status, probe.stderr).toBe(0);
  expect(probe.stderr).toBe("");
  const emulatorDir = path.dirname(probe.stdout.trimEnd());
  // A guest whose profile is not loaded: enforce refuses, complain warns and runs, off just runs.
  const guest = run(["-uuid", UUID]);
  const said = `AppArmor profile not loaded (${path.join(dir, "profiles")})`;
  if (guest.status === 1 && guest.stderr.includes(`${said}; refusing to start QEMU unconfined (mode = enforce)`)) return { mode: "enforce", emulatorDir };
  expect(guest.status, guest.stderr).toBe(0);
  if (guest.stderr.includes(`${said}; QEMU runs unconfined (mode = complain)`)) return { mode: "complain", emulatorDir };
  expect(guest.stderr).toBe("");
  return { mode: "off", emulatorDir };
}

// One file a row; @DIR@ is the test's directory (emulators in @DIR@/qemu and @DIR@/qemu2).
const FILES: [string, string][] = [
  ["empty", ""],
  ["defaults spelled out", `mode = "enforce"\nemulator_dir = "/usr/bin"\n`],
  ["bare and quoted values", `mode = off\nemulator_dir = "@DIR@/qemu2"\n`],
  ["blanks and tabs around everything", ` \t mode\t=\t"complain" \t\n\temulator_dir=@DIR@/qemu \n`],
  ["CRLF line ends", `mode = off\r\nemulator_dir = @DIR@/qemu2\r\n`],
  ["no newline at the end", `emulator_dir = "@DIR@/qemu"\nmode = complain`],
  ["trailing slash", `emulator_dir = @DIR@/qemu2/\n`],
  ["comments and blank lines", `# a comment\n   # indented\n\n \t \n#mode = off\n\v# after a vertical tab\n\f\nmode = off # not a comment\n`],
  ["comment after a quoted value", `mode = "off" # no\n`],
  ["= in a bare value", `mode = a=b\n`],
  ["every key, valid", [
    'mode = "complain"', 'no_apparmor = "compile-only"', 'started_check = "enforce"', 'reconnect_failure = "fail"',
    'parser = "/usr/sbin/apparmor_parser"', 'features_file = ""', 'cache_dir = "/var/cache/x"', 'template = "/etc/t"',
    'apparmor_dir = "/etc/apparmor.d"', "subdomainfs = /fs", "lock_timeout = 0010", "parser_timeout = 3600",
    "log_level = debug", 'log_file = ""', "attach = wrapper", "require_attach = yes", "emulator_dir = @DIR@/qemu2", "guest_mode = any",
    "compiled_store = no", "compiled_store_max_size = 0512", "compiled_store_max_age = 3650",
  ].join("\n")],
  ["a key set twice", `mode = off\nemulator_dir = @DIR@/qemu\nmode = off\n`],
  ["a key set twice, the wrapper's other key", `emulator_dir = @DIR@/qemu\nemulator_dir = @DIR@/qemu2\n`],
  ["a key set twice, a key the wrapper does not use", `log_level = info\n\nlog_level = debug\nmode = off\n`],
  ["unknown key", `mode = off\nmodes = off\n`],
  ["unknown key: case matters", `Mode = off\n`],
  ["unknown key: a swap is one edit", `mdoe = off\n`],
  ["unknown key: two edits from 6 characters on", `parser_timout = 60\n`],
  ["unknown key: near none, the known keys", `zzz = 1\n`],
  ["unknown key: a tie between two keys, the known keys", `compiled_store_max_xxxx = 1\n`],
  ["unknown key: a long one", `${"x".repeat(300)} = 1\n`],
  ["single quotes", `mode = 'off'\n`],
  ["opening quote only", `mode = "off\n`],
  ["closing quote only", `mode = off"\n`],
  ["two quoted values", `mode = "off" "on"\n`],
  ["a quote inside quotes", `mode = "of"f"\n`],
  ["a lone quote", `mode = "\n`],
  ["a space in a bare value", `emulator_dir = @DIR@/qemu x\n`],
  ["a line without =", `mode = off\ngarbage\n`],
  ["a key with a space", `log level = info\n`],
  ["an empty key", `= off\n`],
  ["==", `mode == off\n`],
  ["a carriage return too many", `mode = off\r\r\n`],
  ["a vertical tab before the key", `\vmode = off\n`],
  ["a tab inside quotes", `mode = "of\tf"\n`],
  ["a backslash in a value", `mode = "a\\b"\n`],
  ["invalid mode", `mode = enforcing\n`],
  ["empty mode", `mode =\n`],
  ["emulator_dir relative", `emulator_dir = qemu\n`],
  ["emulator_dir empty", `emulator_dir = ""\n`],
  ["emulator_dir with ..", `emulator_dir = "@DIR@/qemu/../qemu2"\n`],
  ["features_file relative", `features_file = "features"\n`],
  ["lock_timeout 0", `lock_timeout = 0\n`],
  ["lock_timeout 3601", `lock_timeout = 3601\n`],
  ["lock_timeout 5 digits", `lock_timeout = 00001\n`],
  ["lock_timeout not a number", `lock_timeout = "1s"\n`],
  ["parser_timeout 4", `parser_timeout = 4\n`],
  ["require_attach true", `require_attach = true\n`],
  ["guest_mode invalid", `guest_mode = "tighten-only"\n`],
  ["guest_mode = tighten", `guest_mode = tighten\nmode = off\n`],
  ["attach = helper", `attach = "helper"\nmode = off\n`],
  ["attach invalid", `attach = "helpers"\n`],
  ["no_apparmor invalid", `no_apparmor = "compile"\n`],
  ["compiled_store invalid", `compiled_store = true\n`],
  ["compiled_store_max_size 0", `compiled_store_max_size = 0\n`],
  ["compiled_store_max_size 65537", `compiled_store_max_size = 65537\n`],
  ["compiled_store_max_age 7 digits", `compiled_store_max_age = 0000001\n`],
  ["compiled_store_max_age not a number", `compiled_store_max_age = 1d\n`],
  ["the first error wins", `mode = off\nlog_level = loud\nmode = on\n`],
];

describe("the wrapper reads virt-aa-hook.conf as src/config.ts does", () => {
  it.each(FILES)("%s", (_what, template) => {
    const file = path.join(dir, "conf");
    const text = template.replaceAll("@DIR@", dir);
    fs.writeFileSync(file, text);
    const hook = hookReads(text, file);
    const wrapper = wrapperReads(file);
    if ("mode" in wrapper && wrapper.mode === "(no emulator)") expect({ ...hook, mode: "(no emulator)" }).toEqual(wrapper);
    else expect(wrapper).toEqual(hook);
  });

  it("covers an invalid value of every key the wrapper has to know, and the wrapper knows them all", () => {
    const text = FILES.map(([, t]) => t).join("\n");
    for (const key of CONFIG_KEYS) expect(text, key).toContain(`${key} =`);
    const wrapperKeys = /^CONFIG_KEYS="([^"]*)"$/m.exec(fs.readFileSync(WRAPPER, "utf8"))?.[1];
    expect(wrapperKeys?.split(", ")).toEqual(CONFIG_KEYS);
  });

  it("without a file both read the defaults", () => {
    const wrapper = wrapperReads(path.join(dir, "no-such-conf"));
    expect(wrapper).toEqual({ mode: "(no emulator)", emulatorDir: DEFAULT_CONFIG.emulatorDir });
  });
});
