/**
 * A full disk under /etc/apparmor.d/libvirt: a small tmpfs (or, where tmpfs cannot be mounted, a
 * loop-mounted ext4 image) in the temporary root, filled to the last page. prepare/start with new
 * rules fail with one line naming guest, .files and ENOSPC; the old files stay byte-identical and
 * no half-written file is left; once there is room again the next prepare succeeds.
 *
 * Needs root and a mount namespace that allows mounting; otherwise the test is skipped with the
 * reason printed.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { TestRoot } from "../lifecycle/fixture.js";
import { callHookAsync, expectedFiles, guest, hookRoot, LIBVIRT_DIR, readOrUndef, REPLACE, snapshot, uuidFor, versionXml } from "./faults-kit.js";

const mounted: string[] = [];
const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const m of mounted.reverse()) {
    try {
      execFileSync("umount", [m], { stdio: "pipe" });
    } catch {
      try {
        execFileSync("umount", ["-l", m], { stdio: "pipe" });
      } catch {
        // already gone
      }
    }
  }
  for (const c of cleanups) c();
});

/** Mount a small filesystem on `dir`: tmpfs, else a loop ext4 image. Returns what was mounted or why not. */
function mountSmall(dir: string): { kind: string } | { skip: string } {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", dir], { stdio: "pipe" });
    mounted.push(dir);
    return { kind: "tmpfs (256 KiB)" };
  } catch (tmpfsErr) {
    const img = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vaah-loop-")), "fs.img");
    cleanups.push(() => fs.rmSync(path.dirname(img), { recursive: true, force: true }));
    try {
      execFileSync("truncate", ["-s", "2M", img]);
      execFileSync("mkfs.ext4", ["-q", "-F", img], { stdio: "pipe" });
      execFileSync("mount", ["-o", "loop", img, dir], { stdio: "pipe" });
      mounted.push(dir);
      return { kind: "loop ext4 (2 MiB)" };
    } catch (loopErr) {
      const first = (e: unknown) => String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).split("\n")[0];
      return { skip: `cannot mount tmpfs (${first(tmpfsErr)}) nor a loop ext4 image (${first(loopErr)})` };
    }
  }
}

/** Fill the filesystem holding `dir` until a write fails with ENOSPC. */
function fill(dir: string): string {
  const filler = path.join(dir, "filler");
  const fd = fs.openSync(filler, "w");
  const chunk = Buffer.alloc(4096, 0x61);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
  }
  try {
    for (;;) fs.writeSync(fd, chunk, 0, 1); // the last partial page/block
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
  } finally {
    fs.closeSync(fd);
  }
  return filler;
}

describe("full disk", () => {
  let t: TestRoot | undefined;
  afterAll(() => {
    const dir = t?.at(LIBVIRT_DIR);
    const i = dir ? mounted.indexOf(dir) : -1;
    if (dir && i >= 0) {
      execFileSync("umount", [dir]);
      mounted.splice(i, 1);
    }
    t?.remove();
  });

  it("ENOSPC in /etc/apparmor.d/libvirt: a clear error, the old files intact, nothing half-written", async (ctx) => {
    t = hookRoot("vaah-full-");
    const dir = t.at(LIBVIRT_DIR);
    const template = fs.readFileSync(path.join(dir, "TEMPLATE.qemu"));
    const m = mountSmall(dir);
    if ("skip" in m) {
      console.log(`full-disk: skipped: ${m.skip}`);
      ctx.skip();
      return;
    }
    console.log(`full-disk: ${LIBVIRT_DIR} is a ${m.kind}`);
    fs.rmSync(path.join(dir, "lost+found"), { recursive: true, force: true });
    fs.writeFileSync(path.join(dir, "TEMPLATE.qemu"), template);

    const g = guest("vm1", uuidFor("full-disk", 0));
    const v0 = versionXml(t, g, 0);
    const v3 = versionXml(t, g, 3);
    expect(await callHookAsync(t, [g.name, "prepare", "begin", "-"], v0)).toMatchObject({ status: 0, stderr: "" });
    const before = snapshot(t, g);
    const entries = fs.readdirSync(dir).sort();

    const filler = fill(dir);
    fs.writeFileSync(t.at(REPLACE), "");
    const line = (name: string, files: string) => `virt-aa-hook: error: ${name}: ${files}: cannot write the new rules in ${LIBVIRT_DIR}: ENOSPC: no space left on device\n`;
    for (const o of ["prepare", "start"]) {
      const r = await callHookAsync(t, [g.name, o, "begin", "-"], v3);
      expect({ op: o, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ op: o, status: 1, stdout: "", stderr: line(g.name, g.files) });
      expect(snapshot(t, g)).toEqual(before);
      expect(fs.readdirSync(dir).sort()).toEqual([...entries, "filler"].sort());
    }
    // A guest starting for the first time is refused too, and gets no file at all.
    const g2 = guest("vm2", uuidFor("full-disk", 1));
    const r2 = await callHookAsync(t, [g2.name, "prepare", "begin", "-"], versionXml(t, g2, 0));
    expect({ status: r2.status, stderr: r2.stderr }).toEqual({ status: 1, stderr: line(g2.name, g2.files) });
    expect(snapshot(t, g2)).toEqual({ [g2.profile]: undefined, [g2.files]: undefined, [g2.state]: undefined });
    expect(fs.readdirSync(dir).sort()).toEqual([...entries, "filler"].sort());
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0); // nothing new was loaded

    // The running guest's unchanged rules need no write: its prepare still loads them.
    expect(await callHookAsync(t, [g.name, "prepare", "begin", "-"], v0)).toMatchObject({ status: 0, stderr: "" });
    expect(readOrUndef(t, g.files)?.toString()).toBe(before[g.files]);

    // Room again: the next prepare with the new rules succeeds.
    fs.rmSync(filler);
    expect(await callHookAsync(t, [g.name, "prepare", "begin", "-"], v3)).toMatchObject({ status: 0, stderr: "" });
    expect(t.read(g.files)).toBe(expectedFiles(t, v3));
  }, 60_000);
});
