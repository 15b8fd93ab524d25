import fs from "node:fs";
import type { Layout } from "./layout.js";

/**
 * Read-only access to host files, always through the layout, so `--root DIR` confines every read.
 * Synchronous on purpose: the hook runs once per libvirt call and async buys nothing but start-up.
 * Arguments are host paths (as rules name them).
 */
export class HostFs {
  constructor(readonly layout: Layout) {}

  lstat(hostPath: string): fs.Stats | undefined {
    return fs.lstatSync(this.layout.host(hostPath), { throwIfNoEntry: false });
  }

  stat(hostPath: string): fs.Stats | undefined {
    return fs.statSync(this.layout.host(hostPath), { throwIfNoEntry: false });
  }

  readlink(hostPath: string): string {
    return fs.readlinkSync(this.layout.host(hostPath));
  }

  /** The link target's raw bytes (a target need not be valid UTF-8). */
  readlinkBytes(hostPath: string): Buffer {
    return fs.readlinkSync(this.layout.host(hostPath), { encoding: "buffer" });
  }

  readdir(hostPath: string): string[] {
    return fs.readdirSync(this.layout.host(hostPath));
  }

  /**
   * Entries in the order the kernel returns them (readdir(3) order, which `readdir` above does not
   * keep: libuv sorts its scandir), for code that must pick "the first" entry as a C program would.
   */
  readdirRaw(hostPath: string): string[] {
    const dir = fs.opendirSync(this.layout.host(hostPath));
    const names: string[] = [];
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) names.push(entry.name);
    } finally {
      dir.closeSync();
    }
    return names;
  }

  /** Read at most `maxBytes` from the start of a regular file. */
  readHead(hostPath: string, maxBytes: number): Buffer {
    const fd = this.open(hostPath);
    try {
      return this.readAt(fd, 0, maxBytes);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Open for reading without following into FIFOs or blocking on devices (O_NONBLOCK). */
  open(hostPath: string): number {
    return fs.openSync(this.layout.host(hostPath), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  }

  readAt(fd: number, position: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }
}
