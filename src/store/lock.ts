import fs from "node:fs";
import lockfile from "proper-lockfile";
import { HostError } from "../errors.js";

/**
 * One lock per guest (proper-lockfile: an mkdir'ed `<uuid>.lock` directory whose mtime the holder
 * refreshes), so two hook calls for the same guest never interleave their writes and loads, while
 * different guests proceed in parallel.
 *
 * A holder killed with SIGKILL leaves its lock directory behind; once its mtime is older than
 * `staleMs` the next caller takes it over. Waiting is bounded: after `timeoutMs` the caller gets a
 * clear error instead of hanging libvirtd, which waits for the hook without a timeout.
 */
export interface GuestLockOptions {
  /** Real path of the lock directory to create (e.g. <root>/run/virt-aa-hook/locks/<uuid>.lock). */
  lockPath: string;
  /** Guest name, for messages. */
  guest: string;
  /** What the lock protects, for messages; default `guest <guest>`. */
  subject?: string;
  timeoutMs: number;
  /** A lock not refreshed for this long belongs to a dead process (proper-lockfile minimum: 2000). */
  staleMs?: number;
  /** Delay between attempts. */
  retryMs?: number;
}

export const DEFAULT_STALE_MS = 5000;

export class GuestLock {
  private compromised: Error | undefined;
  private releaseFn: (() => Promise<void>) | undefined;

  private constructor(readonly opts: GuestLockOptions) {}

  static async acquire(opts: GuestLockOptions): Promise<GuestLock> {
    const lock = new GuestLock(opts);
    await lock.take();
    return lock;
  }

  private async take(): Promise<void> {
    const { lockPath, timeoutMs } = this.opts;
    const subject = this.subject;
    const staleMs = Math.max(2000, this.opts.staleMs ?? DEFAULT_STALE_MS);
    const retryMs = this.opts.retryMs ?? 100;
    try {
      fs.mkdirSync(lockPath.slice(0, lockPath.lastIndexOf("/")) || "/", { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new HostError(`cannot lock ${subject}: cannot create the lock directory: ${(err as Error).message}`);
    }
    const deadline = Date.now() + timeoutMs;
    // Our own loop instead of proper-lockfile's retries: the bound is wall time, not a count.
    for (;;) {
      try {
        this.releaseFn = await lockfile.lock(lockPath, {
          realpath: false,
          lockfilePath: lockPath,
          stale: staleMs,
          retries: 0,
          onCompromised: (err) => {
            // The default handler throws from a timer and kills the process mid-write; instead
            // remember it, and check() refuses to commit anything after this point.
            this.compromised = err;
          },
        });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ELOCKED") {
          throw new HostError(`cannot lock ${subject}: ${lockPath}: ${(err as Error).message}`);
        }
        if (Date.now() + retryMs > deadline) {
          throw new HostError(
            `cannot lock ${subject}: another virt-aa-hook holds ${lockPath} for more than ${Math.round(timeoutMs / 1000)} s`,
          );
        }
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  }

  /** Throws if the lock was lost (another process took it over): nothing may be written then. */
  check(): void {
    if (this.compromised) {
      throw new HostError(`cannot keep the lock of ${this.subject}: ${this.opts.lockPath}: ${this.compromised.message}`);
    }
  }

  private get subject(): string {
    return this.opts.subject ?? `guest ${this.opts.guest}`;
  }

  async release(): Promise<void> {
    const fn = this.releaseFn;
    this.releaseFn = undefined;
    if (!fn) return;
    try {
      await fn();
    } catch {
      // Already released or taken over (compromised): nothing of ours is left to remove.
    }
  }
}

/** Run `fn` holding the guest's lock; the lock is released however `fn` ends. */
export async function withGuestLock<T>(opts: GuestLockOptions, fn: (lock: GuestLock) => Promise<T>): Promise<T> {
  const lock = await GuestLock.acquire(opts);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/**
 * The host-wide lock, `<lockDir>/host.lock` (a name no UUID can take): held for milliseconds while
 * one guest checks the paths every other guest holds and records its own (hook/exclusive.ts), so
 * two guests preparing at once cannot both claim the same disk. Lock order: it is only ever taken
 * while holding that guest's own lock, and nothing waits for a guest lock while holding it, so
 * the two locks cannot deadlock.
 */
export async function withHostLock<T>(lockPath: string, timeoutMs: number, fn: (lock: GuestLock) => Promise<T>): Promise<T> {
  return withGuestLock({ lockPath, guest: "-", subject: "the paths held by running guests", timeoutMs, retryMs: 20 }, fn);
}

/**
 * Does some process hold this guest lock now (a lock directory refreshed within the stale time)?
 * For `prune`, which leaves alone a guest a hook is working on. Unreadable counts as held.
 */
export function guestLockHeld(lockPath: string, staleMs = DEFAULT_STALE_MS): boolean {
  try {
    return lockfile.checkSync(lockPath, { realpath: false, lockfilePath: lockPath, stale: Math.max(2000, staleMs) });
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}
