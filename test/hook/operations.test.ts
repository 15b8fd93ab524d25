import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadLayout } from "../../src/config.js";
import type { HookContext } from "../../src/hook/context.js";
import { releaseGuest } from "../../src/hook/release.js";
import { checkStarted } from "../../src/hook/started.js";
import { syncProfile } from "../../src/hook/sync.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { domainXml, UUID } from "../lifecycle/harness.js";

// Operations in process: each returns { summary, warnings } and writes nothing to stderr (only
// the hook's entry point, run.ts, does; test/lifecycle checks the lines it writes).

const NAME = `libvirt-${UUID}`;
let t: TestRoot;
let stderr: ReturnType<typeof vi.spyOn>;

beforeEach(() => {
  t = makeTestRoot("vaah-ops-");
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at("/var/lib/libvirt/images/vm1.img"), Buffer.alloc(4096));
  stderr = vi.spyOn(process.stderr, "write");
});
afterEach(() => {
  expect(stderr).not.toHaveBeenCalled();
  stderr.mockRestore();
  t.remove();
});

function ctx(op: string): HookContext {
  const { layout, config } = loadLayout(t.root);
  return { layout, config, guest: "vm1", op, warnings: [] };
}

describe("operations return what they did and what they tolerated", () => {
  it("prepare, then a prepare that finds an interrupted hook's staging dir", async () => {
    const xml = Buffer.from(domainXml());
    expect(await syncProfile(ctx("prepare"), xml, "always")).toEqual({
      uuid: UUID,
      profileName: NAME,
      summary: "loaded new rules, created profile",
      warnings: [{ path: "-", reason: expect.stringMatching(new RegExp(`^compiled store: compiled ${NAME} and stored it as [0-9a-f]{16}`)), level: "debug" }],
    });
    fs.mkdirSync(t.at(`/etc/apparmor.d/libvirt/.virt-aa-hook-stage-${UUID}-1-abcd/libvirt`), { recursive: true });
    expect(await syncProfile(ctx("prepare"), xml, "always")).toEqual({
      uuid: UUID,
      profileName: NAME,
      summary: "loaded unchanged rules",
      warnings: [
        { path: "-", reason: "removed the staging leftovers of an interrupted hook and the profile's cache entries" },
        // The compiled-policy store's note for the log (debug level): unchanged rules, no compile.
        { path: "-", reason: expect.stringMatching(new RegExp(`^compiled store: loaded ${NAME} from [0-9a-f]{16} without compiling`)), level: "debug" },
      ],
    });
  });

  it("started with started_check = warn returns the mismatch as a warning for stderr", () => {
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.pid"), "4242\n");
    fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
    fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), "unconfined\n");
    const reason = `QEMU (pid 4242) runs as "unconfined", not in its profile ${NAME} (enforce)`;
    expect(checkStarted(ctx("started"), Buffer.from(domainXml()))).toEqual({
      summary: `warning: ${reason}`,
      warnings: [{ path: "/proc/4242/attr/apparmor/current", reason, stderr: true }],
    });
  });

  it("release of a guest we never saw: nothing to do, no warnings", async () => {
    expect(await releaseGuest(ctx("release"), Buffer.from("not xml"))).toEqual({
      summary: "nothing to release: no valid guest in the XML and no record by that name",
      warnings: [],
    });
  });

  it("release returns what it could not remove as warnings for stderr", async () => {
    const xml = Buffer.from(domainXml());
    await syncProfile(ctx("prepare"), xml, "always");
    // A directory where the .files should be: removing it fails, the rest is still done.
    const files = t.at(`/etc/apparmor.d/libvirt/${NAME}.files`);
    fs.rmSync(files);
    fs.mkdirSync(files);
    const r = await releaseGuest(ctx("release"), xml);
    expect(r.summary).toBe("unloaded, removed profile");
    expect(r.warnings).toEqual([{ path: "-", reason: expect.stringMatching(new RegExp(`^cannot remove /etc/apparmor\\.d/libvirt/${NAME}\\.files: E`)), stderr: true }]);
  });
});
