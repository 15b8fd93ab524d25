/**
 * Exclusive write access across guests, through the real hook as libvirtd runs it (hooks/qemu in
 * a temporary root, tests/lifecycle/harness.ts): a path one running guest writes is not granted
 * to a second guest unless both disks are <shareable/>. Needs `npm run build`.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { callHook, installHook } from "../lifecycle/harness.js";
import { guestXml, op, UUID_A, UUID_B, UUID_C, type DiskSpec } from "../lifecycle/guests.js";

const IMG = "/var/lib/libvirt/images";
const X = `${IMG}/shared.img`;
const OWN_A = `${IMG}/a.img`;
const OWN_B = `${IMG}/b.img`;
const STATE = "/var/lib/virt-aa-hook";

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-excl-");
  installHook(t);
  fs.mkdirSync(t.at(IMG), { recursive: true });
  for (const p of [X, OWN_A, OWN_B]) fs.writeFileSync(t.at(p), Buffer.alloc(4096));
});
afterEach(() => t.remove());

const A = (disks: (string | DiskSpec)[], id = 1) => guestXml({ name: "A", uuid: UUID_A, id, disks });
const B = (disks: (string | DiskSpec)[], id = 2) => guestXml({ name: "B", uuid: UUID_B, id, disks });

function ok(r: { status: number | null; stdout: string; stderr: string }): void {
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
}
function refused(r: { status: number | null; stdout: string; stderr: string }, line: string): void {
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 1, stdout: "", stderr: `${line}\n` });
}
/** Nothing of guest B was written: no profile, no .files, no record. */
function nothingOfB(): void {
  expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}`)).toBe(false);
  expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}.files`)).toBe(false);
  expect(t.exists(`${STATE}/${UUID_B}.json`)).toBe(false);
}
const written = (guest: string, uuid: string, path = X, source = "disk vda") =>
  `virt-aa-hook: error: B: ${path}: ${source}: written by running guest ${guest} (${uuid}); mark both disks <shareable/> to share it`;

/** Make guest A's record look prepared `ago` ms ago (a host that went down before release). */
function agePrepared(uuid: string, ago: number): void {
  const file = t.at(`${STATE}/${uuid}.json`);
  const rec = JSON.parse(fs.readFileSync(file, "utf8"));
  rec.prepared = new Date(Date.now() - ago).toISOString();
  fs.writeFileSync(file, JSON.stringify(rec));
}
/** A live QEMU for guest `name` as the hook sees one: its pid file names an existing /proc entry. */
function qemuRuns(name: string, pid: number): void {
  fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
  fs.writeFileSync(t.at(`/run/libvirt/qemu/${name}.pid`), `${pid}\n`);
  fs.mkdirSync(t.at(`/proc/${pid}`), { recursive: true });
}

describe("a disk written by a running guest", () => {
  it("is refused to a second guest at prepare, naming the other guest; nothing of the second is written", () => {
    ok(callHook(t, op("A", "prepare"), A([OWN_A, X])));
    const r = callHook(t, op("B", "prepare"), B([X, OWN_B]));
    refused(r, written("A", UUID_A));
    nothingOfB();
    // A's record says what it holds.
    const rec = JSON.parse(t.read(`${STATE}/${UUID_A}.json`));
    expect(rec.holds.map((h: { path: string; write: boolean }) => [h.path, h.write])).toEqual([
      [OWN_A, true],
      [X, true],
      // (no QEMU log: libvirt's default stdio_handler "logd", rules/runtime.ts)
      ["/run/libvirt/qemu/A.pid", true],
    ]);
  });

  it("is refused for reading too (the reader would see the writer's data), and a read disk is not granted writable", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    refused(callHook(t, op("B", "prepare"), B([{ path: X, readonly: true }])), written("A", UUID_A));
    ok(callHook(t, op("A", "release"), A([X])));
    ok(callHook(t, op("A", "prepare"), A([{ path: X, readonly: true }])));
    refused(
      callHook(t, op("B", "prepare"), B([X])),
      `virt-aa-hook: error: B: ${X}: disk vda: read by running guest A (${UUID_A}); mark both disks <shareable/> to share it`,
    );
    nothingOfB();
  });

  it("is found under another name: a hard link to the same file", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    fs.linkSync(t.at(X), t.at(`${IMG}/alias.img`));
    refused(
      callHook(t, op("B", "prepare"), B([`${IMG}/alias.img`])),
      `virt-aa-hook: error: B: ${IMG}/alias.img: disk vda: written by running guest A (${UUID_A}) as ${X}; mark both disks <shareable/> to share it`,
    );
  });

  it("cannot reach the second guest later, at start, as a backing layer libvirt describes", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    ok(callHook(t, op("B", "prepare"), B([OWN_B])));
    const r = callHook(t, op("B", "start"), B([{ path: OWN_B, backing: [X] }]));
    // start never adds an image file prepare did not grant (image provenance), so the held path
    // is refused before the exclusive check would name A.
    refused(
      r,
      `virt-aa-hook: error: B: ${X}: disk vda backing 1: not granted at all when the guest was prepared; start and reconnect never add an image file (restart the guest)`,
    );
    // B keeps holding only what its prepare granted.
    const rec = JSON.parse(t.read(`${STATE}/${UUID_B}.json`));
    expect(rec.holds.map((h: { path: string }) => h.path)).toEqual([OWN_B, "/run/libvirt/qemu/B.pid"]);
  });

  it("counts a record whose prepare is long past while its QEMU runs", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    agePrepared(UUID_A, 24 * 3600 * 1000);
    qemuRuns("A", 31337);
    refused(callHook(t, op("B", "prepare"), B([X])), written("A", UUID_A));
  });
});

describe("negative controls: sharing that is allowed", () => {
  it("both disks <shareable/>", () => {
    ok(callHook(t, op("A", "prepare"), A([{ path: X, shareable: true }])));
    ok(callHook(t, op("B", "prepare"), B([{ path: X, shareable: true }])));
    // One of the two is not enough.
    refused(
      callHook(t, op("C", "prepare"), guestXml({ name: "C", uuid: UUID_C, id: 3, disks: [X] })),
      `virt-aa-hook: error: C: ${X}: disk vda: written by running guest A (${UUID_A}); mark both disks <shareable/> to share it`,
    );
  });

  it("read-only for both", () => {
    ok(callHook(t, op("A", "prepare"), A([{ path: X, readonly: true }])));
    ok(callHook(t, op("B", "prepare"), B([{ path: X, readonly: true }])));
  });

  it("the first guest was released", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    ok(callHook(t, op("A", "stopped"), A([X])));
    ok(callHook(t, op("A", "release"), A([X])));
    ok(callHook(t, op("B", "prepare"), B([X])));
  });

  it("the first guest's record is stale: no QEMU and its prepare is past the grace window (logged)", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    agePrepared(UUID_A, 10 * 60 * 1000);
    qemuRuns("other", 31337); // a live QEMU of some other guest changes nothing
    ok(callHook(t, op("B", "prepare"), B([X])));
    const warnings = t.read("/var/log/libvirt/virt-aa-hook.log").split("\n").filter((l) => l.includes(" warn: "));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`warn: guest="B" op=prepare "${X}: also held by guest A (${UUID_A}), not counted: no running QEMU and prepared 20`);
  });

  it("the same guest preparing again (its own record never conflicts)", () => {
    ok(callHook(t, op("A", "prepare"), A([X])));
    ok(callHook(t, op("A", "prepare"), A([X])));
    ok(callHook(t, op("A", "start"), A([{ path: X, backing: [] }])));
  });

  it("a failed load gives the claim back: the path is free for the next guest", () => {
    // B's admin profile does not compile: B's prepare fails after claiming X.
    fs.writeFileSync(t.at(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}`), "profile libvirt-x { this is not apparmor }\n");
    const r = callHook(t, op("B", "prepare"), B([X]));
    expect(r.status).toBe(1);
    expect(t.exists(`${STATE}/${UUID_B}.json`)).toBe(false);
    ok(callHook(t, op("A", "prepare"), A([X])));
  });
});

describe("two guests preparing at once", () => {
  it("exactly one of them gets the disk (the claim is made under the host-wide lock)", async () => {
    for (let round = 0; round < 3; round++) {
      const run = (name: string, xml: string) =>
        new Promise<{ status: number | null; stderr: string }>((resolve) => {
          const child = spawn(t.at("/etc/libvirt/hooks/qemu"), op(name, "prepare"), { env: { LC_ALL: "C" }, cwd: "/" });
          let stderr = "";
          child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
          child.on("close", (status) => resolve({ status, stderr }));
          child.stdin.end(xml);
        });
      const [a, b] = await Promise.all([run("A", A([X])), run("B", B([X]))]);
      expect([a.status, b.status].sort()).toEqual([0, 1]);
      const loser = a.status === 1 ? a : b;
      expect(loser.stderr).toMatch(/^virt-aa-hook: error: [AB]: \/var\/lib\/libvirt\/images\/shared\.img: disk vda: written by running guest [AB] \(/);
      ok(callHook(t, op("A", "release"), A([X])));
      ok(callHook(t, op("B", "release"), B([X])));
    }
  }, 120_000);
});
