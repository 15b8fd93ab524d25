/**
 * Image contents are untrusted (issue 14): what a file named only inside an image header may get,
 * how names are resolved, and that start/reconnect never add an image file prepare did not grant.
 * Everything runs through the real bundle: `explain --root` for what a domain would get, the
 * installed `hooks/qemu` for prepare/start/reconnect as libvirtd calls it. Images are real
 * `qemu-img` images or hand-made headers (test/images/helpers.ts) in a temp root.
 *
 * Each case failed on the code before this change (checked by reverting src/ once): the data
 * file and extent were granted rwk wherever they pointed, a backing name anywhere was granted,
 * `dir/link/../x` was read lexically, a symlinked top was read outside --root, and reconnect /
 * start re-read headers and loaded what they named.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { qcow2Header, QEMU_IMG } from "../images/helpers.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, installHook } from "../lifecycle/harness.js";
import { TEST_NODE } from "../helpers/node.js";

const IMAGES = "/var/lib/libvirt/images";
const A = { name: "guest-a", uuid: "0a0a0a0a-aaaa-4aaa-8aaa-00000000000a" };
const B = { name: "guest-b", uuid: "0b0b0b0b-bbbb-4bbb-8bbb-00000000000b" };
const BACKING_FORMAT = 0xe2792aca;
const DATA_FILE = 0x44415441;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-provenance-");
  installHook(t);
  fs.mkdirSync(t.at(IMAGES), { recursive: true });
});
afterEach(() => t.remove());

function write(hostPath: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(t.at(hostPath)), { recursive: true });
  fs.writeFileSync(t.at(hostPath), data);
}

function qemuImg(hostDir: string, ...args: string[]): void {
  fs.mkdirSync(t.at(hostDir), { recursive: true });
  execFileSync(QEMU_IMG, args, { cwd: t.at(hostDir), stdio: ["ignore", "ignore", "pipe"] });
}

/** A hand-made qcow2 header: what a guest that owns its image can write into it. */
function header(spec: { backing?: string; backingFormat?: string; dataFile?: string }): Buffer {
  const extensions: Array<[number, Buffer]> = [];
  if (spec.backingFormat !== undefined) extensions.push([BACKING_FORMAT, Buffer.from(spec.backingFormat)]);
  if (spec.dataFile !== undefined) extensions.push([DATA_FILE, Buffer.from(spec.dataFile)]);
  return qcow2Header({
    ...(spec.dataFile !== undefined ? { incompatible: 4n } : {}),
    ...(spec.backing !== undefined ? { backingOffset: 512n, backingSize: Buffer.byteLength(spec.backing), backingName: Buffer.from(spec.backing) } : {}),
    extensions,
    length: 1024,
  });
}

interface DiskSpec {
  file: string;
  format?: string;
  readonly?: boolean;
  dataStore?: string;
  /** XML backing chain (outermost first), ended by <backingStore/>; undefined: no <backingStore>. */
  chain?: string[];
}

function guestXml(guest: { name: string; uuid: string }, disk: DiskSpec, id?: number): string {
  const dataStore = disk.dataStore === undefined ? "" : `<dataStore type='file'><format type='raw'/><source file='${disk.dataStore}'/></dataStore>`;
  let chain = "";
  if (disk.chain !== undefined) {
    chain = "<backingStore/>";
    for (const layer of [...disk.chain].reverse()) {
      chain = `<backingStore type='file'><format type='qcow2'/><source file='${layer}'/>${chain}</backingStore>`;
    }
  }
  return (
    `<domain type='kvm'${id !== undefined ? ` id='${id}'` : ""}><name>${guest.name}</name><uuid>${guest.uuid}</uuid><devices>` +
    `<disk type='file' device='disk'><driver name='qemu' type='${disk.format ?? "qcow2"}'/><source file='${disk.file}'>${dataStore}</source>${chain}` +
    `<target dev='vda' bus='virtio'/>${disk.readonly ? "<readonly/>" : ""}</disk></devices></domain>`
  );
}

/** `explain --root` through the bundle: exit status, the disk's rule lines, stderr. */
function explain(xml: string): { status: number | null; disk: string[]; stderr: string } {
  const r = spawnSync(TEST_NODE, [BUNDLE, "explain", "--root", t.root, "-"], { input: xml, env: { LC_ALL: "C" }, timeout: 30_000 });
  const disk = r.stdout
    .toString()
    .split("\n")
    .filter((l) => / # disk vda/.test(l));
  return { status: r.status, disk, stderr: r.stderr.toString() };
}

const hookArgs = (guest: { name: string }, op: string): [string, string, string, string] => [guest.name, op, op === "release" ? "end" : "begin", "-"];
const filesOf = (guest: { uuid: string }) => t.read(`/etc/apparmor.d/libvirt/libvirt-${guest.uuid}.files`);

/** Guest B prepared by the hook: its raw disk is in its .files, writable. */
function prepareB(): void {
  write(`${IMAGES}/b.img`, Buffer.alloc(4096));
  const r = callHook(t, hookArgs(B, "prepare"), guestXml(B, { file: `${IMAGES}/b.img`, format: "raw" }, 2));
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  expect(filesOf(B)).toContain(`"${IMAGES}/b.img" rwk,  # disk vda`);
}

describe("a file named only inside an image header (explain, real bundle)", () => {
  it("a qcow2 data file pointing at another guest's disk is refused; the XML's <dataStore> is what counts", () => {
    write(`${IMAGES}/b.img`, Buffer.alloc(4096));
    write(`${IMAGES}/a.data`, Buffer.alloc(4096));
    write(`${IMAGES}/a.qcow2`, header({ dataFile: `${IMAGES}/b.img` }));
    for (const readonly of [false, true]) {
      expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2`, readonly }))).toEqual({
        status: 1,
        disk: [],
        stderr:
          `virt-aa-hook: error: guest-a: ${IMAGES}/b.img: disk vda data-file: named only by the header of ${IMAGES}/a.qcow2: ` +
          "the top image's data file must be declared with <dataStore> in the domain XML\n",
      });
    }
    // Declared in the XML: granted like the top, and the header's name is never followed.
    expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2`, dataStore: `${IMAGES}/a.data` }))).toEqual({
      status: 0,
      disk: [`  "${IMAGES}/a.qcow2" rwk,  # disk vda`, `  "${IMAGES}/a.data" rwk,  # disk vda data-file`],
      stderr: "",
    });
  });

  it("a vmdk extent pointing at another guest's disk is refused", () => {
    write(`${IMAGES}/b.img`, Buffer.alloc(4096));
    write(`${IMAGES}/a.vmdk`, `# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8 FLAT "b.img" 0\n`);
    expect(explain(guestXml(A, { file: `${IMAGES}/a.vmdk`, format: "vmdk", readonly: true }))).toEqual({
      status: 1,
      disk: [],
      stderr:
        `virt-aa-hook: error: guest-a: ${IMAGES}/b.img: disk vda extent: named only by the header of ${IMAGES}/a.vmdk: ` +
        "the top image's extent files must be named by the domain XML, which has no element for them (convert the image: qemu-img convert -O qcow2)\n",
    });
  });

  it("a backing file outside the top image's directory tree is refused before it is read", () => {
    write("/home/alice/notes.img", "private\n");
    write(`${IMAGES}/a.qcow2`, header({ backing: "/home/alice/notes.img", backingFormat: "raw" }));
    expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2` }))).toEqual({
      status: 1,
      disk: [],
      stderr:
        `virt-aa-hook: error: guest-a: /home/alice/notes.img: disk vda backing 1: named only by the header of ${IMAGES}/a.qcow2: ` +
        `outside ${IMAGES}, the directory tree of the disk image (name the layer in <backingStore> to grant it)\n`,
    });
    // Negative control: the same layer beside the image is granted read-only.
    write(`${IMAGES}/base.img`, Buffer.alloc(4096));
    write(`${IMAGES}/a.qcow2`, header({ backing: "base.img", backingFormat: "raw" }));
    expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2` }))).toEqual({
      status: 0,
      disk: [`  "${IMAGES}/a.qcow2" rwk,  # disk vda`, `  "${IMAGES}/base.img" rk,  # disk vda backing 1`],
      stderr: "",
    });
  });

  it("a backing file that another prepared guest holds writable is refused, naming that guest (explain and prepare)", () => {
    prepareB();
    write(`${IMAGES}/a.qcow2`, header({ backing: "b.img", backingFormat: "raw" }));
    const line =
      `virt-aa-hook: error: guest-a: ${IMAGES}/b.img: disk vda backing 1: named only by the header of ${IMAGES}/a.qcow2: guest guest-b holds it writable\n`;
    expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2` }))).toEqual({ status: 1, disk: [], stderr: line });
    const r = callHook(t, hookArgs(A, "prepare"), guestXml(A, { file: `${IMAGES}/a.qcow2` }, 1));
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: line });
    expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${A.uuid}.files`)).toBe(false);
    // The XML may still name it (read-only backing layers are shared, e.g. a golden image).
    expect(explain(guestXml(A, { file: `${IMAGES}/a.qcow2`, chain: [`${IMAGES}/b.img`] })).status).toBe(0);
  });
});

describe("an XML-stated layer's own header (explain, real bundle)", () => {
  // The XML states the chain, but QEMU (libvirt before 10.10 writes no <dataStore> for a backing
  // layer) opens the data file the layer's own header names: that name is header-named, judged
  // against the top's tree and the layer's (storage.ts layerOwnFiles), never granted elsewhere.
  it("a layer whose header names ../other/victim.img as its data file is refused; beside the layer it is granted rk", () => {
    write(`${IMAGES}/other/victim.img`, Buffer.alloc(4096));
    write(`${IMAGES}/g/base.data`, Buffer.alloc(4096));
    write(`${IMAGES}/g/a.qcow2`, header({}));
    write(`${IMAGES}/g/base.qcow2`, header({ dataFile: "../other/victim.img" }));
    const xml = guestXml(A, { file: `${IMAGES}/g/a.qcow2`, chain: [`${IMAGES}/g/base.qcow2`] });
    expect(explain(xml)).toEqual({
      status: 1,
      disk: [],
      stderr:
        `virt-aa-hook: error: guest-a: ${IMAGES}/other/victim.img: disk vda backing 1 data-file: named only by the header of ${IMAGES}/g/base.qcow2: ` +
        `outside ${IMAGES}/g, the directory tree of the disk image (name the layer in <backingStore> to grant it)\n`,
    });
    // Negative control: the same layer naming a data file beside it.
    write(`${IMAGES}/g/base.qcow2`, header({ dataFile: "base.data" }));
    expect(explain(xml)).toEqual({
      status: 0,
      disk: [`  "${IMAGES}/g/a.qcow2" rwk,  # disk vda`, `  "${IMAGES}/g/base.qcow2" rk,  # disk vda backing 1`, `  "${IMAGES}/g/base.data" rk,  # disk vda backing 1 data-file`],
      stderr: "",
    });
  });
});

describe("names are resolved as QEMU and the kernel resolve them (explain, real qemu-img chains)", () => {
  it("dir/link/../x.qcow2: the chain is read from the file the kernel reaches, not the lexical dir/x.qcow2", () => {
    qemuImg(`${IMAGES}/real`, "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    qemuImg(`${IMAGES}/real`, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "top.qcow2");
    fs.mkdirSync(t.at(`${IMAGES}/real/dir`));
    fs.mkdirSync(t.at(`${IMAGES}/vm`));
    fs.symlinkSync("../real/dir", t.at(`${IMAGES}/vm/link`));
    // A decoy where the lexical reading would look.
    qemuImg(`${IMAGES}/vm`, "create", "-q", "-f", "qcow2", "decoy-base.qcow2", "1M");
    qemuImg(`${IMAGES}/vm`, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "decoy-base.qcow2", "top.qcow2");
    expect(explain(guestXml(A, { file: `${IMAGES}/vm/link/../top.qcow2` }))).toEqual({
      status: 0,
      disk: [`  "${IMAGES}/real/top.qcow2" rwk,  # disk vda`, `  "${IMAGES}/real/base.qcow2" rk,  # disk vda backing 1`],
      stderr: "",
    });
  });

  it("a top that is an absolute symlink is read inside --root, and its relative backing name is joined next to the link (as qemu-img does)", () => {
    qemuImg("/store", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    qemuImg("/store", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "base.qcow2", "real.qcow2", "1M");
    qemuImg(IMAGES, "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    // What QEMU opens through a (relative) link: the backing name next to the link, not its target.
    fs.symlinkSync("../../../../store/real.qcow2", t.at(`${IMAGES}/top.qcow2`));
    const info = JSON.parse(execFileSync(QEMU_IMG, ["info", "--output=json", t.at(`${IMAGES}/top.qcow2`)], { encoding: "utf8" })) as Record<string, unknown>;
    expect(info["full-backing-filename"]).toBe(t.at(`${IMAGES}/base.qcow2`));
    fs.rmSync(t.at(`${IMAGES}/top.qcow2`));
    fs.symlinkSync("/store/real.qcow2", t.at(`${IMAGES}/top.qcow2`)); // absolute: only the root resolves it
    expect(explain(guestXml(A, { file: `${IMAGES}/top.qcow2` }))).toEqual({
      status: 0,
      disk: [`  "/store/real.qcow2" rwk,  # disk vda`, `  "${IMAGES}/base.qcow2" rk,  # disk vda backing 1`],
      stderr: "",
    });
  });
});

describe("start and reconnect never add an image file prepare did not grant (installed hook)", () => {
  it("a guest that rewrites its backing name while running: reconnect warns and keeps the profile, start refuses", () => {
    write(`${IMAGES}/base.img`, Buffer.alloc(4096));
    write(`${IMAGES}/evil.img`, Buffer.alloc(4096));
    write(`${IMAGES}/a.qcow2`, header({ backing: "base.img", backingFormat: "raw" }));
    const xml = guestXml(A, { file: `${IMAGES}/a.qcow2` }, 1);
    expect(callHook(t, hookArgs(A, "prepare"), xml).status).toBe(0);
    const prepared = filesOf(A);
    expect(prepared).toContain(`"${IMAGES}/base.img" rk,  # disk vda backing 1`);

    write(`${IMAGES}/a.qcow2`, header({ backing: "evil.img", backingFormat: "raw" }));
    const refusal = `${IMAGES}/evil.img: disk vda backing 1: not granted at all when the guest was prepared; start and reconnect never add an image file (restart the guest)`;
    // An XML without <backingStore> (what an old libvirt hands reconnect): headers are read, and judged.
    const reconnect = callHook(t, hookArgs(A, "reconnect"), xml);
    expect({ status: reconnect.status, stderr: reconnect.stderr }).toEqual({ status: 0, stderr: `virt-aa-hook: warning: guest-a: ${refusal}\n` });
    expect(filesOf(A)).toBe(prepared);
    const start = callHook(t, hookArgs(A, "start"), xml);
    expect({ status: start.status, stderr: start.stderr }).toEqual({ status: 1, stderr: `virt-aa-hook: error: guest-a: ${refusal}\n` });
    expect(filesOf(A)).toBe(prepared);
  });

  it("with the XML's complete chain no header is read: a data file rewritten to B's disk reaches neither reconnect nor a restart", () => {
    prepareB();
    write(`${IMAGES}/a.data`, Buffer.alloc(4096));
    write(`${IMAGES}/a.qcow2`, header({ dataFile: "a.data" }));
    const prepareXml = guestXml(A, { file: `${IMAGES}/a.qcow2`, dataStore: `${IMAGES}/a.data` }, 1);
    const liveXml = guestXml(A, { file: `${IMAGES}/a.qcow2`, dataStore: `${IMAGES}/a.data`, chain: [] }, 1);
    expect(callHook(t, hookArgs(A, "prepare"), prepareXml).status).toBe(0);
    expect(callHook(t, hookArgs(A, "start"), liveXml).status).toBe(0);
    const granted = filesOf(A);
    expect(granted).toContain(`"${IMAGES}/a.data" rwk,  # disk vda data-file`);

    // The running guest points its own header's data file at B's disk.
    write(`${IMAGES}/a.qcow2`, header({ dataFile: `${IMAGES}/b.img` }));
    const reconnect = callHook(t, hookArgs(A, "reconnect"), liveXml);
    expect({ status: reconnect.status, stderr: reconnect.stderr }).toEqual({ status: 0, stderr: "" });
    expect(filesOf(A)).toBe(granted);
    // Restart: prepare again. The XML's <dataStore> is what QEMU gets; the header is not followed.
    for (const [op, xml] of [["release", guestXml(A, { file: `${IMAGES}/a.qcow2`, dataStore: `${IMAGES}/a.data`, chain: [] })], ["prepare", prepareXml], ["start", liveXml]] as const) {
      const r = callHook(t, hookArgs(A, op), xml);
      expect({ op, status: r.status, stderr: r.stderr }).toEqual({ op, status: 0, stderr: "" });
    }
    expect(filesOf(A)).toBe(granted);
    expect(filesOf(A)).not.toContain("b.img");
  });
});
