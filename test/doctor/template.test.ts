/**
 * Errors point at the file to fix: a template (or included abstraction) that does not compile is
 * reported by the hook and by doctor with that file and line, not as an error in the generated
 * profile or `.files`; and `explain NAME` reads a domain's live XML through virsh. Through the
 * built bundle and the real hooks/qemu with the real apparmor_parser. virsh is the one fake (as in
 * test/grants/admin.test.ts): a script at <root>/usr/bin/virsh printing <root>/live/<name>.xml.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, domainXml, installHook, UUID } from "../lifecycle/harness.js";
import { FAKE_VIRSH } from "../helpers/virsh.js";

vi.setConfig({ testTimeout: 120_000 });

const TEMPLATE = "/etc/apparmor.d/libvirt/TEMPLATE.qemu";
const PROFILE = `/etc/apparmor.d/libvirt/libvirt-${UUID}`;
const PREPARE: [string, string, string, string] = ["vm1", "prepare", "begin", "-"];

let t: TestRoot;
let template: string;
beforeEach(() => {
  t = makeTestRoot("vaah-tmpl-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at("/var/lib/libvirt/images/vm1.img"), Buffer.alloc(4096));
  template = t.read(TEMPLATE);
});
afterEach(() => t.remove());

function cli(args: string[], cwd = t.root): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BUNDLE, "--root", t.root, ...args], { encoding: "utf8", cwd, env: { LC_ALL: "C" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
/** The template with `line` added as the last rule of the profile block; returns that line's number. */
function breakTemplate(line: string): number {
  const text = template.replace(/\n}\n?$/, `\n  ${line}\n}\n`);
  fs.writeFileSync(t.at(TEMPLATE), text);
  return text.split("\n").indexOf(`  ${line}`) + 1;
}
const doctorLines = (out: string) => {
  const lines = out.split("\n");
  const at = lines.findIndex((l) => l.includes("template compiles: "));
  return lines.slice(at, at + 2);
};

describe("a template that does not compile is named with its line", () => {
  it("a bad rule: the hook and doctor name TEMPLATE.qemu and the line, nothing is written", () => {
    const line = breakTemplate("bogus rule here,");
    const r = callHook(t, PREPARE, domainXml({ id: 1 }));
    const cause = `AppArmor parser error for ${TEMPLATE} in ${TEMPLATE} at line ${line}: syntax error, unexpected TOK_ID, expecting TOK_MODE (exit status 1)`;
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 1,
      stderr: `virt-aa-hook: error: vm1: ${TEMPLATE}: cannot create ${PROFILE} from ${TEMPLATE}: ${cause}; fix ${TEMPLATE} line ${line}, then start the guest again\n`,
    });
    expect(t.exists(PROFILE)).toBe(false);
    expect(doctorLines(cli(["doctor"]).stdout)).toEqual([
      `FAIL  template compiles: ${TEMPLATE} line ${line}: ${cause}`,
      `      fix: fix ${TEMPLATE} line ${line}: no new guest can start until it compiles (apparmor_parser -QK ${TEMPLATE} shows the same)`,
    ]);
  });

  it("a last rule without its comma names the template's closing brace, not the generated .files", () => {
    const line = breakTemplate("/srv/x r");
    const r = callHook(t, PREPARE, domainXml({ id: 1 }));
    expect(r.stderr).not.toContain(".files");
    expect(r.stderr).toContain(`: ${TEMPLATE}: cannot create ${PROFILE} from ${TEMPLATE}: AppArmor parser error for ${TEMPLATE} in ${TEMPLATE} at line ${line + 1}: `);
    expect(r.stderr).toMatch(new RegExp(`; fix ${TEMPLATE} line ${line + 1}, then start the guest again\\n$`));
  });

  it("an error in an included file names that file and its line", () => {
    // The root's abstractions are a link to a shared copy: give this root its own, with a broken one.
    const dir = t.at("/etc/apparmor.d/abstractions");
    const shared = fs.readlinkSync(dir);
    fs.rmSync(dir);
    fs.cpSync(shared, dir, { recursive: true });
    fs.writeFileSync(`${dir}/broken`, "  /a r,\n  bogus thing here\n  /c r,\n");
    breakTemplate("#include <abstractions/broken>");
    const r = callHook(t, PREPARE, domainXml({ id: 1 }));
    const cause = `AppArmor parser error for ${TEMPLATE} in /etc/apparmor.d/abstractions/broken at line 2: syntax error, unexpected TOK_ID, expecting TOK_MODE (exit status 1)`;
    expect(r.stderr).toBe(
      `virt-aa-hook: error: vm1: /etc/apparmor.d/abstractions/broken: cannot create ${PROFILE} from ${TEMPLATE}: ${cause}; fix /etc/apparmor.d/abstractions/broken line 2, then start the guest again\n`,
    );
    expect(doctorLines(cli(["doctor"]).stdout)[0]).toBe(`FAIL  template compiles: /etc/apparmor.d/abstractions/broken line 2: ${cause}`);
  });

  it("negative control: the installed template compiles, doctor says ok and the guest starts", () => {
    expect(doctorLines(cli(["doctor"]).stdout)[0]).toBe(`ok    template compiles: ${TEMPLATE} (with an empty .files)`);
    expect(callHook(t, PREPARE, domainXml({ id: 1 })).status).toBe(0);
  });
});


describe("explain NAME", () => {
  beforeEach(() => {
    fs.mkdirSync(t.at("/usr/bin"), { recursive: true });
    fs.writeFileSync(t.at("/usr/bin/virsh"), FAKE_VIRSH, { mode: 0o755 });
    fs.mkdirSync(t.at("/live"));
    fs.writeFileSync(t.at("/live/vm1.xml"), domainXml());
  });

  it("a name is the domain's live XML through virsh; a bare word that is also a file here is refused; ./NAME is the file, --domain the domain", () => {
    fs.writeFileSync(t.at("/file.xml"), domainXml());
    const fromFile = cli(["explain", t.at("/file.xml")]);
    expect(fromFile.status).toBe(0);
    expect(cli(["explain", "vm1"])).toEqual(fromFile);
    expect(t.read("/virsh-calls")).toBe("--connect qemu:///system dumpxml --security-info -- vm1\n");

    // Another user's file named vm1 in the working directory (review19 F12): neither it nor the
    // domain is explained under that bare word, and virsh is not asked.
    fs.writeFileSync(t.at("/vm1"), domainXml({ disks: ["/var/lib/libvirt/images/other.img"] }));
    expect(cli(["explain", "vm1"])).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot explain vm1: it names both a file here and a domain; say ./vm1 for the file or --domain vm1 for the domain\n",
    });
    expect(t.read("/virsh-calls").split("\n").length - 1).toBe(1);
    expect(cli(["explain", "./vm1"]).stdout).toContain("/var/lib/libvirt/images/other.img");
    expect(cli(["explain", "--domain", "vm1"])).toEqual(fromFile);
    expect(t.read("/virsh-calls").split("\n").length - 1).toBe(2);
    // Negative control: the file gone, the bare word is the domain again.
    fs.rmSync(t.at("/vm1"));
    expect(cli(["explain", "vm1"])).toEqual(fromFile);
  });

  it("an unknown name says so, and how to name a file", () => {
    expect(cli(["explain", "nosuch"])).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot read the XML of domain nosuch: virsh dumpxml: error: failed to get domain 'nosuch'; is it defined (virsh list --all)? (a file is named with a /: ./nosuch)\n",
    });
    // A path is always a file.
    expect(cli(["explain", "./nosuch"]).stderr).toMatch(/^virt-aa-hook: error: cannot read \.\/nosuch: ENOENT/);
  });
});
