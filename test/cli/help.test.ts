import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_NODE } from "../helpers/node.js";

// --help, --version, completion and the config's "did you mean", through the built bundle (npm run
// build first) run by the node under test (test/helpers/node.ts: Debian's node 18 in its pass).
const REPO = path.resolve(".");
const BUNDLE = path.join(REPO, "dist/virt-aa-hook.cjs");

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TEST_NODE, [BUNDLE, ...args], { encoding: "utf8", env: { LC_ALL: "C", ...env }, cwd: "/", timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every command yargs knows, as its completion lists them (the same list `virt-aa-hook <TAB>` gets). */
function commands(): string[] {
  const r = cli(["--get-yargs-completions", "virt-aa-hook", ""]);
  expect(r.status).toBe(0);
  return r.stdout.trim().split("\n");
}

describe("--help", () => {
  it("the command list is the one the CLI defines (a negative control for the enumeration)", () => {
    const listed = commands();
    // The commands every build has; others may be added, and then each is checked below too.
    for (const c of ["explain", "hook", "status", "doctor", "grant", "install", "network-hook", "virt-aa-helper", "completion"]) expect(listed).toContain(c);
    expect(listed).not.toContain("--help");
    expect(new Set(listed).size).toBe(listed.length);
  });

  it("top level: exit 0, usage, every command, the global options", () => {
    const r = cli(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.startsWith("virt-aa-hook <command> [options]\n\nPer-guest AppArmor confinement for libvirt QEMU guests.\n")).toBe(true);
    for (const c of commands()) expect(r.stdout).toContain(`virt-aa-hook ${c}`);
    expect(r.stdout).toMatch(/^ {2}--version {2}Show version number/m);
    expect(r.stdout).toMatch(/\nExamples:\n {2}virt-aa-hook status /);
    expect(r.stdout).toMatch(/\nExit status:\n {2}0 {2}done\n {2}1 {2}refused or failed/);
  });

  it.each(commands().map((c) => [c]))("%s --help: exit 0, its usage, purpose, options, examples and exit status", (command) => {
    const r = cli([command, "--help"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // The usage line names the command with its arguments; then its purpose.
    expect(r.stdout).toMatch(new RegExp(`^virt-aa-hook ${command.replace(/[-]/g, "\\-")}( [<[].*)?\\n\\n[A-Z(]`));
    expect(r.stdout).toMatch(/\nOptions:\n(?:.*\n)*? +--root /);
    expect(r.stdout).toMatch(/\nExamples:\n {2}(\S+ )*?(virt-aa-hook|\S+\.sh) /);
    const exit = /\nExit status:\n((?: {2}\d+ +\S.*\n(?: {5}\S.*\n)*)+)$/.exec(r.stdout);
    expect(exit, r.stdout).not.toBeNull();
    expect(exit![1]).toMatch(/^ {2}0 /);
    // Said once (src/cli/help.ts), not also in a command's own epilogue: the man page repeats it otherwise.
    expect(r.stdout.split("Exit status").length).toBe(2);
  });

  it.each([["hook"], ["network-hook"], ["virt-aa-helper"]])("%s --help, also after --root", (command) => {
    const r = cli(["--root", "/nonexistent", command, "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(cli([command, "--help"]).stdout);
  });

  // After "--" come libvirt's words: a guest or network named --help is a name, not a request.
  it("hook: a guest named --help is a guest (no XML on stdin: the hook's error, no help)", () => {
    const r = cli(["hook", "--root", "/nonexistent", "--", "--help", "prepare", "begin", "-"]);
    expect(r).toEqual({ status: 1, stdout: "", stderr: "virt-aa-hook: error: -: XML: malformed XML at line 1: Start tag expected.\n" });
  });
  it("network-hook: a network named --help is a network (an operation it ignores: exit 0, silent)", () => {
    expect(cli(["network-hook", "--root", "/nonexistent", "--", "--help", "started", "begin", "-"])).toEqual({ status: 0, stdout: "", stderr: "" });
  });
  it("virt-aa-helper: --help after -- is libvirt's helper's own option (its usage, not ours)", () => {
    const r = cli(["virt-aa-helper", "--root", "/nonexistent", "--", "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith("\nvirt-aa-helper mode [options]")).toBe(true);
    expect(r.stdout).not.toContain("Exit status:");
  });
});

describe("--version", () => {
  it("one line: the package version and the build id on the bundle's last line", () => {
    const version = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).version as string;
    const build = /\/\/# virt-aa-hook-build ([0-9a-f]{64})\n$/.exec(fs.readFileSync(BUNDLE, "utf8"))![1];
    expect(cli(["--version"])).toEqual({ status: 0, stdout: `virt-aa-hook ${version} build ${build}\n`, stderr: "" });
  });
});

describe("completion", () => {
  let bin: string;
  let script: string;
  beforeAll(() => {
    // virt-aa-hook on PATH, as the package installs it: the script runs it for the words.
    bin = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-completion-"));
    fs.writeFileSync(path.join(bin, "virt-aa-hook"), `#!/bin/sh\nexec '${TEST_NODE}' '${BUNDLE}' "$@"\n`, { mode: 0o755 });
    const r = cli(["completion"], { SHELL: "/bin/bash" });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    script = r.stdout;
    fs.writeFileSync(path.join(bin, "completion.bash"), script);
  });
  afterAll(() => fs.rmSync(bin, { recursive: true, force: true }));

  it("prints yargs' bash script, which bash -n accepts", () => {
    expect(script.startsWith("###-begin-virt-aa-hook-completions-###\n")).toBe(true);
    expect(script).toContain("complete -o bashdefault -o default -F _virt-aa-hook_yargs_completions virt-aa-hook\n");
    const r = spawnSync("bash", ["-n", path.join(bin, "completion.bash")], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  /** What bash completes for the words (the last is the one being typed). */
  function complete(...words: string[]): string[] {
    const r = spawnSync(
      "bash",
      ["--norc", "--noprofile", "-c", `. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _virt-aa-hook_yargs_completions; printf '%s\\n' "\${COMPREPLY[@]}"`, "bash", path.join(bin, "completion.bash"), ...words],
      { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, LC_ALL: "C" } },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r.stdout.split("\n").filter((l) => l !== "");
  }

  it("completes a command name, a command's option, and nothing for a word no command starts with", () => {
    expect(complete("virt-aa-hook", "sta")).toEqual(["status"]);
    expect(complete("virt-aa-hook", "ins").sort()).toEqual(["install", "install-summary"]);
    expect(complete("virt-aa-hook", "status", "--j")).toEqual(["--json"]);
    expect(complete("virt-aa-hook", "zzz")).toEqual([]);
  });
});

describe("a config key typo", () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-typo-"));
    fs.mkdirSync(path.join(root, "etc/libvirt"), { recursive: true });
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it("names the file, the line and the key, and the key it probably means", () => {
    fs.writeFileSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"), '# virt-aa-hook\nmode = "enforce"\nparser_timout = 30\n');
    expect(cli(["status", "--root", root])).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot read config /etc/libvirt/virt-aa-hook.conf: line 3: parser_timout: unknown key: did you mean parser_timeout?\n",
    });
  });

  it("no guess for a key near none: the known keys", () => {
    fs.writeFileSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"), "colour = blue\n");
    const r = cli(["status", "--root", root]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^virt-aa-hook: error: cannot read config \/etc\/libvirt\/virt-aa-hook\.conf: line 1: colour: unknown key \(known: mode, no_apparmor, .*, compiled_store_max_age\)\n$/);
  });
});
