/**
 * `virt-aa-hook denials` through the built bundle, on real kernel lines from the lab VM
 * (test/fixtures/denials/README.md) in temporary roots: every mapping class with its exact output,
 * the sources (kern.log, audit.log, both), --since, --json, --follow, and the negative controls
 * (other profiles, another guest's lines, hostile names).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const BUNDLE = path.resolve("dist/virt-aa-hook.cjs");
const FIX = path.resolve("test/fixtures/denials");
const UUID = {
  "lab-a": "1ab0000a-0000-4000-8000-00000000000a",
  "lab-b": "1ab0000b-0000-4000-8000-00000000000b",
  "lab-o": "1ab000d0-0000-4000-8000-0000000000d0",
  "lab-f": "1ab000f9-0000-4000-8000-0000000000f9",
  "lab-r": "1ab000e9-0000-4000-8000-0000000000e9",
  "lab-s": "1ab000e5-0000-4000-8000-0000000000e5",
} as const;
type Guest = keyof typeof UUID;

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-denials-"));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const fixture = (file: string) => fs.readFileSync(path.join(FIX, file), "utf8").split("\n").filter(Boolean);
const REAL = [...fixture("wrapper-boot1.dmesg.txt"), ...fixture("helper-boot1.dmesg.txt"), ...fixture("seclabel-boot1.dmesg.txt")];

function put(hostPath: string, text: string): void {
  const file = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}
/** The lab's definitions of `guests` in /etc/libvirt/qemu. */
function define(...guests: Guest[]): void {
  for (const g of guests) put(`/etc/libvirt/qemu/${g}.xml`, fs.readFileSync(path.join(FIX, "domains", `${g}.xml`), "utf8"));
}
/** As rsyslog writes kern.log: its prefix before the kernel's line. */
function kernLog(lines: readonly string[]): void {
  put("/var/log/kern.log", lines.map((l) => `Dec  5 10:30:00 lab kernel: ${l}\n`).join(""));
}
/** As auditd writes audit.log: `type=AVC msg=audit(...): ...` (the kernel's record after its dmesg prefix). */
function auditLog(lines: readonly string[]): void {
  put("/var/log/audit/audit.log", lines.map((l) => `type=AVC msg=${l.slice(l.indexOf("audit("))}\n`).join(""));
}
function run(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BUNDLE, "denials", "--root", root, ...args], { encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function json(...args: string[]): Record<string, unknown>[] {
  const r = run("--json", ...args);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}
const pick = (o: Record<string, unknown>, ...keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]));

const NOT_ASKED_FIX = (g: string, p: string, extra = "") =>
  `  fix: if ${g} should open it: name it in the element that uses it (e.g. a <disk> with <source file='${p}'/>)${extra}, or pre-authorise it in the domain's <metadata>: <vah:allow path="${p}" access="r"/> (docs/metadata.md), or for a running guest in seclabel/wrapper mode: virt-aa-hook grant ${g} ${p} --read-only (docs/runtime-grants.md); if it should not, nothing: the profile did its job\n`;
const SHARE = " (another guest's file: both disks <shareable/> if either writes it; docs/threat-model.md)";

describe("denials: real lab lines, one guest", () => {
  it("lab-a: another guest's disk (not-asked, naming the other guest) and /etc/shadow (refused); nothing of lab-b's or of other profiles", () => {
    define("lab-a", "lab-b");
    kernLog(REAL);
    const r = run("lab-a");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'lab-a: DENIED open "/var/lib/libvirt/images/lab-b.qcow2" r by qemu-system-x86, 8 times, 2026-12-05T10:19:33.440Z to 2026-12-05T10:20:58.400Z\n' +
        `  profile libvirt-${UUID["lab-a"]}\n` +
        "  nothing in lab-a's XML asks for /var/lib/libvirt/images/lab-b.qcow2; another guest's XML asks for it: lab-b (disk vda)\n" +
        NOT_ASKED_FIX("lab-a", "/var/lib/libvirt/images/lab-b.qcow2", SHARE) +
        'lab-a: DENIED open "/etc/shadow" r by qemu-system-x86, 2 times, at 2026-12-05T10:19:34.904Z\n' +
        `  profile libvirt-${UUID["lab-a"]}\n` +
        "  nothing in lab-a's XML asks for /etc/shadow, and the policy refuses /etc/shadow: restricted location /etc is never granted to guests\n" +
        "  fix: none: the policy gives it to no element, <metadata> entry or grant; if the guest needs it, change what the refusal names\n",
    );
    // Negative controls: lab-b's own denials (of lab-a's disk) and virt-aa-hook's capable lines.
    expect(r.stdout).not.toContain("lab-a.qcow2");
    expect(r.stdout).not.toContain("sys_ptrace");
  });

  it("lab-a by UUID is the same as by name", () => {
    define("lab-a", "lab-b");
    kernLog(REAL);
    expect(run(UUID["lab-a"]).stdout).toBe(run("lab-a").stdout);
  });

  it("lab-o (wrapper and helper runs): removed disks and media are not asked for; its own image is granted now (an older profile denied it)", () => {
    define("lab-o");
    kernLog(REAL);
    const found = json("lab-o").map((f) => pick(f, "class", "path", "requested", "count", "first", "last", "elements", "granted", "others"));
    const notAsked = (p: string, count: number, first: string, last: string) => ({ class: "not-asked", path: p, requested: "r", count, first, last, elements: [], granted: null, others: [] });
    const img = "/var/lib/libvirt/images";
    expect(found).toEqual([
      notAsked(`${img}/lab-o-hot.qcow2`, 4, "2026-12-05T10:14:03.032Z", "2026-12-05T10:22:52.264Z"),
      notAsked("/dev/loop0", 4, "2026-12-05T10:14:29.700Z", "2026-12-05T10:23:05.176Z"),
      notAsked(`${img}/lab-o-cd1.iso`, 4, "2026-12-05T10:15:05.124Z", "2026-12-05T10:23:21.124Z"),
      notAsked(`${img}/lab-o-cd2.iso`, 4, "2026-12-05T10:15:14.584Z", "2026-12-05T10:23:26.372Z"),
      { class: "granted-now", path: `${img}/lab-o.qcow2`, requested: "w", count: 1, first: "2026-12-05T10:15:29.732Z", last: "2026-12-05T10:15:29.732Z", elements: ["disk sda"], granted: "rwk", others: [] },
      notAsked(`${img}/lab-o.snap1.qcow2`, 4, "2026-12-05T10:15:45.820Z", "2026-12-05T10:23:45.780Z"),
      { class: "granted-now", path: `${img}/lab-o.qcow2`, requested: "r", count: 2, first: "2026-12-05T10:16:01.236Z", last: "2026-12-05T10:16:01.236Z", elements: ["disk sda"], granted: "rwk", others: [] },
      notAsked(`${img}/lab-o-nogrant.qcow2`, 1, "2026-12-05T10:16:52.320Z", "2026-12-05T10:16:52.320Z"),
    ]);
    const text = run("lab-o").stdout;
    expect(text).toContain(
      'lab-o: DENIED open "/var/lib/libvirt/images/lab-o.qcow2" w by qemu-system-x86, 1 time, at 2026-12-05T10:15:29.732Z\n' +
        `  profile libvirt-${UUID["lab-o"]}\n` +
        `  lab-o's XML now grants "rwk" via disk sda: the denial came from an earlier profile\n` +
        "  fix: none if it does not recur (the XML changed since, or a hotplug, media change or block job reached the profile later); if it does, `virt-aa-hook sync lab-o` (seclabel/wrapper) or restart the guest\n",
    );
    // A block device is named by <source dev=...>.
    expect(text).toContain("(e.g. a <disk> with <source dev='/dev/loop0'/>)");
  });

  it("lab-o running: its live XML (libvirt's status XML) is preferred to its definition", () => {
    define("lab-o");
    kernLog(REAL);
    const defined = fs.readFileSync(path.join(FIX, "domains", "lab-o.xml"), "utf8");
    // The live domain with the hot-plugged disk attached (synthetic: a status XML as libvirt writes it around <domain>).
    const live = defined
      .replace("<domain type='qemu'>", "<domain type='qemu' id='3'>")
      .replace("<controller type='scsi'", "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/lab-o-hot.qcow2'/><target dev='sdb' bus='scsi'/></disk>\n    <controller type='scsi'");
    put("/run/libvirt/qemu/lab-o.xml", `<domstatus state='running' reason='booted' pid='2811'>\n  <monitor path='/var/lib/libvirt/qemu/domain-3-lab-o/monitor.sock' type='unix'/>\n  ${live}</domstatus>\n`);
    const hot = json("lab-o").find((f) => f.path === "/var/lib/libvirt/images/lab-o-hot.qcow2")!;
    expect(pick(hot, "class", "elements", "granted", "explanation")).toEqual({
      class: "granted-now",
      elements: ["disk sdb"],
      granted: "rwk",
      explanation: `lab-o's live XML now grants "rwk" via disk sdb: the denial came from an earlier profile`,
    });
  });

  it("lab-r: its ROM opened for writing (partial: read via loader, not w)", () => {
    define("lab-r");
    kernLog(REAL);
    expect(run("lab-r").stdout).toBe(
      'lab-r: DENIED open "/usr/local/share/qemu/lab-bios.bin" w by qemu-system-x86, 1 time, at 2026-12-05T10:25:50.928Z\n' +
        `  profile libvirt-${UUID["lab-r"]}\n` +
        '  the profile grants "r" via loader, but not "w"\n' +
        `  fix: a <loader>, kernel or initrd is read-only by design (QEMU writes only the <nvram>); if lab-r's QEMU must write it all the same, add that rule to its profile /etc/apparmor.d/libvirt/libvirt-${UUID["lab-r"]} (the admin's file: never overwritten)\n`,
    );
  });

  it("lab-s: libvirt's dbus-daemon exec under the guest's profile (template)", () => {
    define("lab-s");
    kernLog(REAL);
    expect(run("lab-s").stdout).toBe(
      'lab-s: DENIED exec "/usr/bin/dbus-daemon" x by rpc-libvirtd, 1 time, at 2026-12-05T10:26:34.332Z\n' +
        `  profile libvirt-${UUID["lab-s"]}\n` +
        "  exec of /usr/bin/dbus-daemon is nothing an element of the XML asks for: the profile's template decides it (TEMPLATE.qemu and its abstractions)\n" +
        `  fix: to allow it for lab-s alone, add a rule to its profile /etc/apparmor.d/libvirt/libvirt-${UUID["lab-s"]} (the admin's file: never overwritten)\n`,
    );
  });

  it("lab-f: another guest's 9p file (not-asked, the share it belongs to named)", () => {
    define("lab-f", "lab-s");
    kernLog(REAL);
    expect(run("lab-f").stdout).toBe(
      'lab-f: DENIED open "/srv/lab-9p/lab-s/probe.img" r by qemu-system-x86, 2 times, at 2026-12-05T10:25:28.436Z\n' +
        `  profile libvirt-${UUID["lab-f"]}\n` +
        "  nothing in lab-f's XML asks for /srv/lab-9p/lab-s/probe.img; another guest's XML asks for it: lab-s (filesystem labshare)\n" +
        NOT_ASKED_FIX("lab-f", "/srv/lab-9p/lab-s/probe.img", SHARE),
    );
  });

  it("a guest known only from its state record (no-xml); a profile nobody knows (unknown-guest)", () => {
    put(
      `/var/lib/virt-aa-hook/${UUID["lab-f"]}.json`,
      JSON.stringify({ version: 1, uuid: UUID["lab-f"], name: "lab-f", profileName: `libvirt-${UUID["lab-f"]}`, updated: "2026-12-05T10:25:00.000Z" }),
    );
    kernLog(REAL);
    const r = run();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'lab-f: DENIED open "/srv/lab-9p/lab-s/probe.img" r by qemu-system-x86, 2 times, at 2026-12-05T10:25:28.436Z\n' +
        `  profile libvirt-${UUID["lab-f"]}\n` +
        "  lab-f is neither defined nor running: no XML to say which element asks for /srv/lab-9p/lab-s/probe.img\n" +
        "  fix: define lab-f again, or read `virt-aa-hook explain` of its XML\n",
    );
    expect(r.stdout).toContain(
      '(unknown guest): DENIED open "/usr/local/share/qemu/lab-bios.bin" w by qemu-system-x86, 1 time, at 2026-12-05T10:25:50.928Z\n' +
        `  profile libvirt-${UUID["lab-r"]}\n` +
        `  no domain definition, state record or kept profile names ${UUID["lab-r"]}: it cannot be mapped to a guest\n` +
        "  fix: none known here; if the guest is transient and runs, `virsh dumpxml` it and read `virt-aa-hook explain` of that XML\n",
    );
    // Every guest profile's groups, and nothing of the others (virt-aa-hook, libvirtd).
    expect(r.stdout.match(/^\S.*: (DENIED|ALLOWED) /gm)).toHaveLength(15);
    expect(r.stdout).not.toMatch(/sys_ptrace|profile virt-aa-hook|profile libvirtd/);
  });

  it("an XML the policy refuses now (xml-refused)", () => {
    define("lab-b");
    put(
      "/etc/libvirt/qemu/lab-a.xml",
      fs.readFileSync(path.join(FIX, "domains", "lab-a.xml"), "utf8").replace("<controller type='usb'", "<disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdb' bus='virtio'/></disk>\n    <controller type='usb'"),
    );
    kernLog(REAL);
    const f = json("lab-a");
    expect(f.map((x) => pick(x, "class", "path", "explanation"))).toEqual(
      ["/var/lib/libvirt/images/lab-b.qcow2", "/etc/shadow"].map((p) => ({
        class: "xml-refused",
        path: p,
        explanation: "lab-a's XML is refused by the policy now: /etc/shadow: disk vdb: restricted location /etc is never granted to guests",
      })),
    );
  });
});

describe("denials: negative controls and hostile lines", () => {
  beforeEach(() => {
    define("lab-a", "lab-b");
    kernLog(fixture("synthetic.dmesg.txt"));
  });

  it("a hostile name= and comm= are printed escaped; another guest's line naming lab-a's profile in its path stays the other guest's", () => {
    const r = run("lab-a");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'lab-a: DENIED open "/tmp/\\x1b[31mevil\\x07 b\\\\x.img" r by qemu\\x1b]0;pwned, 1 time, at 2026-12-05T10:36:40.100Z\n' +
        `  profile libvirt-${UUID["lab-a"]}\n` +
        "  nothing in lab-a's XML asks for /tmp/\\x1b[31mevil\\x07 b\\\\x.img\n" +
        "  fix: if lab-a should open it: name it in the element that uses it (e.g. a <disk> with <source file='/tmp/\\x1b[31mevil\\x07 b\\\\x.img'/>), or pre-authorise it in the domain's <metadata>: <vah:allow path=\"/tmp/\\x1b[31mevil\\x07 b\\\\x.img\" access=\"r\"/> (docs/metadata.md), or for a running guest in seclabel/wrapper mode: virt-aa-hook grant lab-a /tmp/\\x1b[31mevil\\x07 b\\\\x.img --read-only (docs/runtime-grants.md); if it should not, nothing: the profile did its job\n" +
        'lab-a: DENIED capable capability net_admin by qemu-system-x86, 1 time, at 2026-12-05T10:36:40.500Z\n' +
        `  profile libvirt-${UUID["lab-a"]}\n` +
        "  capability net_admin is nothing an element of the XML asks for: the profile's template decides it (TEMPLATE.qemu and its abstractions)\n" +
        `  fix: to allow it for lab-a alone, add a rule to its profile /etc/apparmor.d/libvirt/libvirt-${UUID["lab-a"]} (the admin's file: never overwritten)\n` +
        'lab-a: ALLOWED open "/var/lib/libvirt/images/lab-a.qcow2" rw by qemu-system-x86, 1 time, at 2026-12-05T10:36:40.600Z\n' +
        `  profile libvirt-${UUID["lab-a"]}\n` +
        `  lab-a's XML now grants "rwk" via disk vda: the denial came from an earlier profile\n` +
        "  fix: none if it does not recur (the XML changed since, or a hotplug, media change or block job reached the profile later); if it does, `virt-aa-hook sync lab-a` (seclabel/wrapper) or restart the guest\n",
    );
    expect(r.stdout).not.toContain("\x1b");
    expect(r.stdout).not.toContain("\x07");
    // Not lab-a's: `libvirt-<uuid>-evil`, libvirtd's profile, lab-b's line.
    expect(r.stdout).not.toMatch(/passwd|libvirtd|profile=/);

    const b = json("lab-b");
    expect(b.map((x) => pick(x, "guest", "profile", "path", "rawPath", "class"))).toEqual([
      {
        guest: "lab-b",
        profile: `libvirt-${UUID["lab-b"]}`,
        path: `/x\\x22 profile=\\x22libvirt-${UUID["lab-a"]}`,
        rawPath: Buffer.from(`/x" profile="libvirt-${UUID["lab-a"]}`).toString("hex"),
        class: "not-asked",
      },
    ]);
  });

  it("--json: every stable field, in order", () => {
    const [first] = json("lab-a", "--since", "@1796467000.5");
    expect(first).toEqual({
      guest: "lab-a",
      uuid: UUID["lab-a"],
      profile: `libvirt-${UUID["lab-a"]}`,
      decision: "DENIED",
      operation: "capable",
      path: null,
      rawPath: null,
      capability: "net_admin",
      requested: null,
      denied: null,
      comm: "qemu-system-x86",
      count: 1,
      first: "2026-12-05T10:36:40.500Z",
      last: "2026-12-05T10:36:40.500Z",
      class: "template",
      elements: [],
      granted: null,
      others: [],
      explanation: "capability net_admin is nothing an element of the XML asks for: the profile's template decides it (TEMPLATE.qemu and its abstractions)",
      fix: `to allow it for lab-a alone, add a rule to its profile /etc/apparmor.d/libvirt/libvirt-${UUID["lab-a"]} (the admin's file: never overwritten)`,
    });
    expect(Object.keys(first!)).toEqual(["guest", "uuid", "profile", "decision", "operation", "path", "rawPath", "capability", "requested", "denied", "comm", "count", "first", "last", "class", "elements", "granted", "others", "explanation", "fix"]);
  });
});

describe("denials: sources, --since, errors", () => {
  it("audit.log alone, and audit.log with kern.log holding the same events: each event counted once", () => {
    define("lab-a", "lab-b");
    const counts = () => json("lab-a").map((f) => [f.path, f.count]);
    auditLog(REAL);
    expect(counts()).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 8], ["/etc/shadow", 2]]);
    kernLog(REAL);
    expect(counts()).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 8], ["/etc/shadow", 2]]);
    // Negative control: the two sources are both read (an event only in kern.log is there).
    kernLog([...REAL, ...fixture("synthetic.dmesg.txt")]);
    expect(counts()).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 8], ["/etc/shadow", 2], [`/tmp/\\x1b[31mevil\\x07 b\\\\x.img`, 1], [null, 1], ["/var/lib/libvirt/images/lab-a.qcow2", 1]]);
  });

  it("/var/log/syslog when there is no kern.log", () => {
    define("lab-a", "lab-b");
    put("/var/log/syslog", REAL.map((l) => `2026-12-05T10:30:00.000000+00:00 lab kernel: ${l}\n`).join(""));
    expect(json("lab-a").map((f) => f.count)).toEqual([8, 2]);
  });

  it("--since: an ISO time with zone and epoch seconds keep the later denials only; a local time without zone is accepted", () => {
    define("lab-a", "lab-b");
    kernLog(REAL);
    const counts = (since: string) => json("lab-a", "--since", since).map((f) => [f.path, f.count, f.first]);
    expect(counts("2026-12-05T10:20:00Z")).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 6, "2026-12-05T10:20:14.636Z"]]);
    expect(counts("2026-12-05T11:20:00+01:00")).toEqual(counts("2026-12-05T10:20:00Z"));
    expect(counts("@1796466014.64")).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 5, "2026-12-05T10:20:14.640Z"]]);
    expect(counts("2030-01-01")).toEqual([]);
    expect(run("lab-a", "--since", "2030-01-01").stdout).toBe(
      `no AppArmor denials for lab-a in /var/log/kern.log since ${new Date(2030, 0, 1).toISOString()}\n`,
    );
  });

  it("errors: no source, an unknown guest, an unreadable --since", () => {
    define("lab-a");
    expect(run("lab-a")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "virt-aa-hook: error: cannot read the kernel's audit lines: none of /var/log/audit/audit.log, the journal (journalctl), /var/log/kern.log, /var/log/syslog, dmesg is there; see docs/denials.md\n",
    });
    kernLog(REAL);
    expect(run("lab-x")).toEqual({
      code: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot find guest lab-x: no running domain, definition, state record or kept profile has that name; give its UUID, or run `virt-aa-hook denials` for every guest\n",
    });
    expect(run("lab-a", "--since", "yesterday-ish")).toEqual({
      code: 2,
      stdout: "",
      stderr: 'virt-aa-hook: error: cannot read --since "yesterday-ish": give a time ("2026-12-05 10:00", "2026-12-05T10:00:00Z"), "@<epoch seconds>" or a duration ("10min", "2h", "1 day ago")\n',
    });
  });
});

describe("denials --follow", () => {
  it("prints what is there, then each new denial of the guest as it is appended; a signal ends it with 0", async () => {
    define("lab-a", "lab-b");
    kernLog(REAL.slice(0, 80));
    const proc = spawn(process.execPath, [BUNDLE, "denials", "--root", root, "--follow", "--json", "lab-a"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const lines = () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
    };
    await until(() => lines().length >= 2);
    expect(lines().map((f) => [f.path, f.count])).toEqual([["/var/lib/libvirt/images/lab-b.qcow2", 2], ["/etc/shadow", 2]]);
    // Appended: one of lab-a's (later, a new event), one of lab-b's (negative control).
    const rest = REAL.slice(80);
    const labA = rest.find((l) => l.includes(`profile="libvirt-${UUID["lab-a"]}"`))!;
    const labB = fixture("synthetic.dmesg.txt")[1]!;
    fs.appendFileSync(path.join(root, "var/log/kern.log"), `Dec  5 10:31:00 lab kernel: ${labB}\nDec  5 10:31:00 lab kernel: ${labA}\n`);
    await until(() => lines().length >= 3);
    proc.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => proc.on("close", (c) => resolve(c)));
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(lines().map((f) => [f.guest, f.path, f.count])).toEqual([
      ["lab-a", "/var/lib/libvirt/images/lab-b.qcow2", 2],
      ["lab-a", "/etc/shadow", 2],
      ["lab-a", "/var/lib/libvirt/images/lab-b.qcow2", 1],
    ]);
  });
});
