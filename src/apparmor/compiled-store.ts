import fs from "node:fs";
import { sha256 } from "../store/guest-files.js";
import { removeDurably, writeFileAtomic } from "../store/atomic.js";
import { GuestLock } from "../store/lock.js";
import { profileNameOf } from "./kernel-load.js";

/**
 * The compiled-policy store (docs/compiled-store.md): compiled profiles, each keyed by the hash
 * of everything that made it (compiled-key.ts), kept across `release`, reboots and guests that
 * come and go, so an unchanged profile is loaded without running apparmor_parser.
 *
 *   <dir>/                          root's, 0700 (checked before every use)
 *     entries/<profile>.<key>       "VAHC1 {json header}\n" + the compiled blob
 *     manifests/<profile>.json      facts of the profile's include closure (include-closure.ts)
 *     parser.json                   the parser's identity by stat signature (compiled-key.ts)
 *     kernel-features.json          the kernel's features hash by boot id (compiled-key.ts)
 *
 * An entry is bound to its profile: the file name, the header and the blob itself (its first
 * profile's name) must all say the profile asked for, and the header's length and sha256 must
 * match the blob. Anything else is corrupt: removed and treated as a miss, never an error.
 * Files are written atomically (store/atomic.ts); readers take no lock. Eviction (size, age) runs
 * under the store's lock, after a miss has added an entry.
 */

const MAGIC = "VAHC1 ";
/** An entry header is a few hundred bytes; more means the file is not ours. */
const MAX_HEADER = 4096;
/** A profile name as the hook makes them (libvirt-<uuid>); nothing else is ever a file name here. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;
const KEY = /^[0-9a-f]{64}$/;
/** A temporary file this old belongs to a writer that died. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/**
 * Entries kept per profile (its most recently used), before the store-wide LRU: one guest whose
 * `.files` changes at every start cannot flush every other guest's compiles. Four covers enforce
 * and complain, each with the previous content.
 */
export const MAX_ENTRIES_PER_PROFILE = 4;

export interface StoreLimits {
  maxBytes: number;
  maxAgeMs: number;
}

interface EntryHeader {
  profile: string;
  key: string;
  length: number;
  sha256: string;
}

export type ReadResult = { blob: Buffer } | { miss: "absent" } | { miss: "corrupt"; why: string };

export class CompiledStore {
  constructor(
    /** Real path of the store directory. */
    readonly dir: string,
    /** Real path of the eviction lock. */
    readonly lockPath: string,
    readonly limits: StoreLimits,
  ) {}

  get entriesDir(): string {
    return `${this.dir}/entries`;
  }

  /**
   * Create the store (0700) or make sure of it: a directory (not a link) owned by this user with
   * no access for anyone else. Returns why it cannot be used, else undefined.
   */
  open(): string | undefined {
    try {
      // /var/cache on a fresh root; the store's own directories are made private below.
      fs.mkdirSync(this.dir.slice(0, this.dir.lastIndexOf("/")) || "/", { recursive: true, mode: 0o755 });
    } catch (err) {
      return `cannot create the directory of ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    for (const d of [this.dir, this.entriesDir, `${this.dir}/manifests`]) {
      try {
        fs.mkdirSync(d, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") return `cannot create ${d}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
      const st = fs.lstatSync(d, { throwIfNoEntry: false });
      if (!st?.isDirectory()) return `${d} is not a directory`;
      const uid = process.geteuid?.() ?? 0;
      if (st.uid !== uid) return `${d} is owned by uid ${st.uid}, not ${uid}`;
      if ((st.mode & 0o077) !== 0) {
        try {
          fs.chmodSync(d, 0o700);
        } catch (err) {
          return `cannot make ${d} private: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        }
      }
    }
    return undefined;
  }

  entryPath(profileName: string, key: string): string {
    if (!PROFILE_NAME.test(profileName)) throw new Error(`not a profile name for the store: ${JSON.stringify(profileName)}`);
    if (!KEY.test(key)) throw new Error(`not a store key: ${JSON.stringify(key)}`);
    return `${this.entriesDir}/${profileName}.${key}`;
  }

  /** The verified blob of `profileName` under `key`; a corrupt entry is removed. A hit marks the entry used (mtime). */
  read(profileName: string, key: string): ReadResult {
    const file = this.entryPath(profileName, key);
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch {
      return { miss: "absent" };
    }
    const why = verify(buf, profileName, key);
    if (typeof why === "string") {
      fs.rmSync(file, { force: true });
      return { miss: "corrupt", why };
    }
    try {
      const now = new Date();
      fs.utimesSync(file, now, now);
    } catch {
      // Only the eviction order depends on it.
    }
    return { blob: why };
  }

  /** Store `blob` (compiled for `profileName`) under `key`, atomically. */
  write(profileName: string, key: string, blob: Buffer): void {
    const header: EntryHeader = { profile: profileName, key, length: blob.length, sha256: sha256(blob) };
    writeFileAtomic(this.entryPath(profileName, key), Buffer.concat([Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`, "utf8"), blob]), { mode: 0o600 });
  }

  /** A small JSON record of the store (manifest, identity); undefined when absent or unreadable. */
  readRecord<T>(name: string): T | undefined {
    try {
      const v: unknown = JSON.parse(fs.readFileSync(`${this.dir}/${name}`, "utf8"));
      return typeof v === "object" && v !== null ? (v as T) : undefined;
    } catch {
      return undefined;
    }
  }

  writeRecord(name: string, value: unknown): void {
    writeFileAtomic(`${this.dir}/${name}`, JSON.stringify(value), { mode: 0o600 });
  }

  /**
   * Evict entries unused for longer than the age bound, then the least recently used ones until
   * the store is within its size bound; manifests unused for the age bound; temporaries of dead
   * writers. Under the store's lock; when another process holds it, that one evicts and this call
   * does nothing. Returns the paths removed.
   */
  async evict(now = Date.now()): Promise<string[]> {
    let lock: GuestLock;
    try {
      lock = await GuestLock.acquire({ lockPath: this.lockPath, guest: "-", subject: "the compiled-policy store", timeoutMs: 0 });
    } catch {
      return [];
    }
    try {
      return this.evictLocked(now);
    } finally {
      await lock.release();
    }
  }

  private evictLocked(now: number): string[] {
    const removed: string[] = [];
    const remove = (file: string) => {
      fs.rmSync(file, { force: true });
      removed.push(file);
    };
    const entries: { file: string; size: number; used: number }[] = [];
    for (const name of listDir(this.entriesDir)) {
      const file = `${this.entriesDir}/${name}`;
      const st = fs.lstatSync(file, { throwIfNoEntry: false });
      if (!st) continue;
      if (name.startsWith(".")) {
        if (now - st.mtimeMs > STALE_TEMP_MS) remove(file);
        continue;
      }
      if (!st.isFile() || now - st.mtimeMs > this.limits.maxAgeMs) remove(file);
      else entries.push({ file, size: st.size, used: st.mtimeMs });
    }
    // Newest first: a profile's entries beyond MAX_ENTRIES_PER_PROFILE go first.
    const perProfile = new Map<string, number>();
    const kept = entries
      .sort((a, b) => b.used - a.used)
      .filter((e) => {
        const base = e.file.slice(this.entriesDir.length + 1);
        const profile = base.slice(0, Math.max(0, base.lastIndexOf(".")));
        const n = (perProfile.get(profile) ?? 0) + 1;
        perProfile.set(profile, n);
        if (n <= MAX_ENTRIES_PER_PROFILE) return true;
        remove(e.file);
        return false;
      });
    let total = kept.reduce((sum, e) => sum + e.size, 0);
    for (const e of kept.sort((a, b) => a.used - b.used)) {
      if (total <= this.limits.maxBytes) break;
      remove(e.file);
      total -= e.size;
    }
    const manifests = `${this.dir}/manifests`;
    for (const name of listDir(manifests)) {
      const file = `${manifests}/${name}`;
      const st = fs.lstatSync(file, { throwIfNoEntry: false });
      if (st && now - st.mtimeMs > (name.startsWith(".") ? STALE_TEMP_MS : this.limits.maxAgeMs)) remove(file);
    }
    return removed;
  }
}

/** The blob, or why the entry is not a valid one for `profileName` under `key`. */
function verify(buf: Buffer, profileName: string, key: string): Buffer | string {
  const nl = buf.indexOf(0x0a);
  if (nl < 0 || nl > MAX_HEADER || buf.toString("latin1", 0, MAGIC.length) !== MAGIC) return "no entry header";
  let header: Partial<EntryHeader>;
  try {
    header = JSON.parse(buf.toString("utf8", MAGIC.length, nl)) as Partial<EntryHeader>;
  } catch {
    return "unreadable entry header";
  }
  const blob = buf.subarray(nl + 1);
  if (header.profile !== profileName) return `compiled for ${JSON.stringify(header.profile)}`;
  if (header.key !== key) return "stored under another key";
  if (header.length !== blob.length) return `${blob.length} bytes where ${header.length} were stored`;
  if (header.sha256 !== sha256(blob)) return "sha256 differs from the one stored";
  const inBlob = profileNameOf(blob);
  if (inBlob !== profileName) return `the compiled policy is for ${JSON.stringify(inBlob ?? "an unknown profile")}`;
  return blob;
}

/**
 * Remove every stored compile of `profileName` (and its manifest) from the store at `storeDir`
 * (real path): `prune`'s counterpart of removeCacheEntries (cache.ts) for the parser's cache.
 * Returns the real paths removed.
 */
export function removeStoreEntries(storeDir: string, profileName: string): string[] {
  const removed: string[] = [];
  if (!PROFILE_NAME.test(profileName)) return removed;
  const entries = `${storeDir}/entries`;
  for (const name of listDir(entries)) {
    const ours = name.startsWith(`${profileName}.`) && KEY.test(name.slice(profileName.length + 1));
    if (ours || isTempOf(profileName, name)) {
      fs.rmSync(`${entries}/${name}`, { force: true });
      removed.push(`${entries}/${name}`);
    }
  }
  const manifest = `${storeDir}/manifests/${profileName}.json`;
  if (removeDurably(manifest)) removed.push(manifest);
  return removed;
}

/** A temporary file writeFileAtomic (tempNameFor) left for one of the profile's entries: `.<profile>.<key>.tmp-…`. */
function isTempOf(profileName: string, name: string): boolean {
  const prefix = `.${profileName}.`;
  return name.startsWith(prefix) && /^[0-9a-f]{64}\.tmp-/.test(name.slice(prefix.length));
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
