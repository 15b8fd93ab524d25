import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GuestLock, withGuestLock } from "../../src/store/lock.js";

let dir: string;
let children: ChildProcess[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-lock-"));
});
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Another process holding the lock the way a hook does (proper-lockfile, same lock path, mtime
 * refreshed). It prints "locked" once it holds it, then waits to be killed.
 */
function holder(lockPath: string): Promise<ChildProcess> {
  const script = `
    const lockfile = require(${JSON.stringify(require.resolve("proper-lockfile"))});
    lockfile.lock(${JSON.stringify(lockPath)}, { realpath: false, lockfilePath: ${JSON.stringify(lockPath)}, stale: 2000, onCompromised() {} })
      .then(() => { process.stdout.write("locked\\n"); setInterval(() => {}, 1000); });
  `;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("locked") && resolve(child));
    child.on("exit", (code) => reject(new Error(`holder exited ${code}`)));
  });
}

describe("per-guest lock", () => {
  it("creates the lock directory (and its parents) while held, removes it on release", async () => {
    const lockPath = path.join(dir, "run/virt-aa-hook/locks/u1.lock");
    let seen = false;
    await withGuestLock({ lockPath, guest: "vm1", timeoutMs: 1000 }, async () => {
      seen = fs.statSync(lockPath).isDirectory();
    });
    expect(seen).toBe(true);
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it("releases the lock when the action throws", async () => {
    const lockPath = path.join(dir, "u2.lock");
    await expect(withGuestLock({ lockPath, guest: "vm1", timeoutMs: 1000 }, async () => {
      throw new Error("boom");
    })).rejects.toThrow("boom");
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it("serialises two holders in one process", async () => {
    const lockPath = path.join(dir, "u3.lock");
    const order: string[] = [];
    const a = withGuestLock({ lockPath, guest: "vm1", timeoutMs: 5000 }, async () => {
      order.push("a-in");
      await new Promise((r) => setTimeout(r, 300));
      order.push("a-out");
    });
    await new Promise((r) => setTimeout(r, 50));
    const b = withGuestLock({ lockPath, guest: "vm1", timeoutMs: 5000 }, async () => {
      order.push("b-in");
    });
    await Promise.all([a, b]);
    expect(order).toEqual(["a-in", "a-out", "b-in"]);
  });

  it("gives up after the timeout with a clear error while a live process holds the lock", async () => {
    const lockPath = path.join(dir, "u4.lock");
    await holder(lockPath);
    const t0 = Date.now();
    await expect(GuestLock.acquire({ lockPath, guest: "vm1", timeoutMs: 1500, staleMs: 2000 })).rejects.toThrow(
      `cannot lock guest vm1: another virt-aa-hook holds ${lockPath} for more than 2 s`,
    );
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(1300);
    expect(waited).toBeLessThan(3000);
    // The live holder's lock is untouched.
    expect(fs.statSync(lockPath).isDirectory()).toBe(true);
  });

  it("takes over the lock of a holder killed with SIGKILL once it is stale", async () => {
    const lockPath = path.join(dir, "u5.lock");
    const child = await holder(lockPath);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(fs.statSync(lockPath).isDirectory()).toBe(true); // left behind: nobody cleaned up
    const t0 = Date.now();
    const lock = await GuestLock.acquire({ lockPath, guest: "vm1", timeoutMs: 10_000, staleMs: 2000 });
    const waited = Date.now() - t0;
    lock.check();
    await lock.release();
    expect(waited).toBeGreaterThanOrEqual(1000); // not before the lock went stale
    expect(waited).toBeLessThan(4000);
    expect(fs.existsSync(lockPath)).toBe(false);
  });
});
