import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

// Real execs of hooks/qemu-wrapper, reached through a symlink named like an emulator, in front of
// a stand-in "QEMU" that prints its own name and argv NUL-separated.
const WRAPPER = path.resolve("hooks/qemu-wrapper");
const UUID = "3e5a1c2b-0d4f-4a6b-9c8d-7e6f5a4b3c2d";

let dir: string;
let env: NodeJS.ProcessEnv;

function write(p: string, text: string, mode = 0o644): string {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text, { mode });
  return p;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-wrapper-"));
  write(
    path.join(dir, "qemu/qemu-system-x86_64"),
    '#!/bin/sh\nprintf "%s\\0" "${0##*/}"\nfor a in "$@"; do printf "%s\\0" "$a"; done\n',
    0o755,
  );
  fs.mkdirSync(path.join(dir, "bin"));
  fs.symlinkSync(WRAPPER, path.join(dir, "bin/qemu-system-x86_64"));
  write(path.join(dir, "conf"), `# test config\nmode = "enforce"\n  emulator_dir  =  "${dir}/qemu"\nattach = "wrapper"\n`);
  write(path.join(dir, "profiles"), `libvirt-00000000-0000-0000-0000-000000000000 (enforce)\nlibvirt-${UUID} (enforce)\n`);
  write(path.join(dir, "attr-exec"), "");
  // A PATH that would run the wrong things if the wrapper ever consulted it.
  write(path.join(dir, "evil/printf"), "#!/bin/sh\nexit 0\n", 0o755);
  env = {
    PATH: `${dir}/evil:/usr/bin:/bin`,
    LC_ALL: "C",
    VIRT_AA_HOOK_CONF: path.join(dir, "conf"),
    VIRT_AA_HOOK_PROFILES: path.join(dir, "profiles"),
    VIRT_AA_HOOK_ATTR_EXEC: path.join(dir, "attr-exec"),
  };
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[], name = "qemu-system-x86_64") {
  const r = spawnSync(path.join(dir, "bin", name), args, { env, encoding: "buffer" });
  const out = r.stdout.toString("utf8");
  const fields = out.split("\0");
  fields.pop(); // trailing NUL
  return { status: r.status, argv: fields, stderr: r.stderr.toString("utf8"), attr: fs.readFileSync(path.join(dir, "attr-exec"), "utf8") };
}

describe("qemu-wrapper", () => {
  it("requests exactly 'exec libvirt-<uuid>' and passes every argument intact (spaces, empty, newlines)", () => {
    const args = ["-name", "guest=web server,debug-threads=on", "", "-uuid", UUID, "a  b", "", "line1\nline2", "-S", "*", "$HOME"];
    const r = run(args);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.argv).toEqual(["qemu-system-x86_64", ...args]);
    expect(r.attr).toBe(`exec libvirt-${UUID}`);
  });

  it("accepts --uuid as QEMU does", () => {
    const r = run(["--uuid", UUID]);
    expect(r.status).toBe(0);
    expect(r.attr).toBe(`exec libvirt-${UUID}`);
  });

  it("passes capability probes (no -uuid) straight through without a transition request", () => {
    const r = run(["-qmp", "unix:/tmp/x,server=on", "-nodefaults", ""]);
    expect(r).toEqual({ status: 0, argv: ["qemu-system-x86_64", "-qmp", "unix:/tmp/x,server=on", "-nodefaults", ""], stderr: "", attr: "" });
  });

  it("refuses in enforce mode when the profile is not loaded, and never runs QEMU", () => {
    write(path.join(dir, "profiles"), `libvirt-${UUID}x (enforce)\nxlibvirt-${UUID} (enforce)\n`);
    const r = run(["-uuid", UUID]);
    expect(r.status).toBe(1);
    expect(r.argv).toEqual([]);
    expect(r.attr).toBe("");
    expect(r.stderr).toBe(
      `virt-aa-hook wrapper: error: libvirt-${UUID}: AppArmor profile not loaded (${dir}/profiles); refusing to start QEMU unconfined (mode = enforce)\n`,
    );
  });

  it("refuses in enforce mode when there is no profile list at all (no AppArmor in the kernel)", () => {
    env.VIRT_AA_HOOK_PROFILES = path.join(dir, "missing");
    const r = run(["-uuid", UUID]);
    expect(r.status).toBe(1);
    expect(r.argv).toEqual([]);
    expect(r.stderr).toContain(`libvirt-${UUID}: AppArmor profile not loaded (${dir}/missing)`);
  });

  it("warns and runs unconfined in complain mode when the profile is not loaded", () => {
    write(path.join(dir, "conf"), `mode = "complain"\nemulator_dir = "${dir}/qemu"\n`);
    write(path.join(dir, "profiles"), "");
    const r = run(["-uuid", UUID, "x y"]);
    expect(r.status).toBe(0);
    expect(r.argv).toEqual(["qemu-system-x86_64", "-uuid", UUID, "x y"]);
    expect(r.attr).toBe("");
    expect(r.stderr).toBe(
      `virt-aa-hook wrapper: warning: libvirt-${UUID}: AppArmor profile not loaded (${dir}/profiles); QEMU runs unconfined (mode = complain)\n`,
    );
  });

  it("mode off execs QEMU without any transition request", () => {
    write(path.join(dir, "conf"), `mode = off\nemulator_dir = ${dir}/qemu\n`);
    const r = run(["-uuid", UUID]);
    expect(r).toEqual({ status: 0, argv: ["qemu-system-x86_64", "-uuid", UUID], stderr: "", attr: "" });
  });

  it.each([
    ["upper case", UUID.toUpperCase()],
    ["no dashes", UUID.replace(/-/g, "")],
    ["path traversal", "../../../etc/passwd"],
    ["trailing newline", `${UUID}\n`],
    ["extra profile text", `${UUID} (enforce)`],
    ["empty", ""],
  ])("rejects a -uuid that is not a canonical lower-case UUID (%s)", (_what, bad) => {
    write(path.join(dir, "profiles"), `libvirt-${bad} (enforce)\n`);
    const r = run(["-uuid", bad]);
    expect(r.status).toBe(1);
    expect(r.argv).toEqual([]);
    expect(r.attr).toBe("");
    expect(r.stderr).toBe(`virt-aa-hook wrapper: error: -uuid "${bad}": not a lower-case canonical UUID\n`);
  });

  it("refuses a second -uuid (it could name another guest's profile)", () => {
    const r = run(["-uuid", UUID, "-append", "x", "-uuid", "00000000-0000-0000-0000-000000000000"]);
    expect(r.status).toBe(1);
    expect(r.argv).toEqual([]);
    expect(r.attr).toBe("");
    expect(r.stderr).toBe("virt-aa-hook wrapper: error: -uuid given 2 times: refusing to choose a profile\n");
  });

  it("refuses a trailing -uuid without value", () => {
    const r = run(["-S", "-uuid"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("virt-aa-hook wrapper: error: -uuid: missing value\n");
  });

  it("refuses when the transition request cannot be written in enforce mode", () => {
    env.VIRT_AA_HOOK_ATTR_EXEC = path.join(dir, "no/such/dir/exec");
    const r = run(["-uuid", UUID]);
    expect(r.status).toBe(1);
    expect(r.argv).toEqual([]);
    expect(r.stderr).toBe(
      `virt-aa-hook wrapper: error: libvirt-${UUID}: cannot request the transition through ${dir}/no/such/dir/exec; refusing to start QEMU unconfined (mode = enforce)\n`,
    );
  });

  it("refuses to be called by a name that is not an emulator's", () => {
    fs.symlinkSync(WRAPPER, path.join(dir, "bin/sh"));
    const r = run(["-uuid", UUID], "sh");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'virt-aa-hook wrapper: error: called as "sh": expected a symlink named after a QEMU emulator (qemu-system-*, qemu-kvm, kvm)\n',
    );
  });

  it("refuses when the real emulator is missing, naming the path and the config", () => {
    fs.symlinkSync(WRAPPER, path.join(dir, "bin/qemu-system-aarch64"));
    const r = run([], "qemu-system-aarch64");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `virt-aa-hook wrapper: error: ${dir}/qemu/qemu-system-aarch64: real emulator not found or not executable (emulator_dir in ${dir}/conf)\n`,
    );
  });

  it("refuses an emulator_dir that points back at the wrapper (exec loop)", () => {
    write(path.join(dir, "conf"), `emulator_dir = "${dir}/bin"\n`);
    const r = run([]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `virt-aa-hook wrapper: error: ${dir}/bin/qemu-system-x86_64: is this wrapper itself; emulator_dir must name the real QEMU directory\n`,
    );
  });

  it("rejects an unknown mode", () => {
    write(path.join(dir, "conf"), `mode = "enforcing"\nemulator_dir = "${dir}/qemu"\n`);
    const r = run([]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`virt-aa-hook wrapper: error: cannot read config ${dir}/conf: line 1: mode: must be one of enforce, complain, off, not "enforcing"\n`);
  });

  it("is valid POSIX sh for dash", () => {
    expect(execFileSync("/bin/dash", ["-n", WRAPPER], { encoding: "utf8" })).toBe("");
  });
});
