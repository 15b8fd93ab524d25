import fs from "node:fs";

/**
 * The domain XML libvirt writes on stdin, read whole but bounded: past `limit` bytes the rest is
 * drained and dropped (libvirt must be able to finish writing; a hook that stops reading early
 * can leave it with a broken pipe) and `truncated` says so.
 *
 * libvirt hands the hook a blocking pipe, so stdin is read with plain read(2) calls: setting up
 * process.stdin as a stream costs several milliseconds on every hook call. A non-blocking stdin
 * (EAGAIN) falls back to the stream.
 */
export async function readStdin(limit: number): Promise<{ data: Buffer; truncated: boolean }> {
  const input = new Bounded(limit);
  if (readSyncUntilEnd(input) === "done") return input.result();
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) input.add(chunk);
  } catch {
    // stdin closed or not readable (e.g. started by hand without input): what we have is the input.
  }
  return input.result();
}

const CHUNK = 64 * 1024;

/** "done" at end of input (or when stdin cannot be read); "again" if stdin is non-blocking. */
function readSyncUntilEnd(input: Bounded): "done" | "again" {
  for (;;) {
    const buf = Buffer.allocUnsafe(CHUNK);
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, CHUNK, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN" || code === "EWOULDBLOCK") return "again";
      if (code === "EINTR") continue;
      return "done"; // EBADF (no stdin), EISDIR, EOF-like errors: what we have is the input
    }
    if (n === 0) return "done";
    input.add(buf.subarray(0, n));
  }
}

class Bounded {
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;
  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    if (this.size >= this.limit) {
      this.truncated = true;
      return;
    }
    const room = this.limit - this.size;
    if (chunk.length > room) {
      this.chunks.push(chunk.subarray(0, room));
      this.size = this.limit;
      this.truncated = true;
    } else {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
  }

  result(): { data: Buffer; truncated: boolean } {
    return { data: Buffer.concat(this.chunks, this.size), truncated: this.truncated };
  }
}
