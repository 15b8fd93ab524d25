/**
 * Text → lines, holding at most one line of `max` characters (review19 F9): a log or a program's
 * output may hold a line without end, which readline would keep whole. A longer line is dropped:
 * the kernel never writes one (a printk record is at most a few KiB; auditd's
 * MAX_AUDIT_MESSAGE_LENGTH is 8970 bytes, a PATH_MAX path in hex is 8 KiB).
 */
export const MAX_LINE = 64 * 1024;

export class LineSplitter {
  private rest = "";
  /** Inside a line longer than `max`, dropped up to its end. */
  private skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly max = MAX_LINE,
  ) {}

  push(chunk: string): void {
    let start = 0;
    for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const line = this.rest + piece;
      this.rest = "";
      if (line.length <= this.max) this.onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
    if (this.skipping) return;
    const tail = chunk.slice(start);
    if (this.rest.length + tail.length > this.max) {
      this.rest = "";
      this.skipping = true;
    } else this.rest += tail;
  }

  /** The input ended: its last line, if it has no newline. */
  end(): void {
    if (!this.skipping && this.rest !== "") this.onLine(this.rest);
    this.reset();
  }

  /** Forget a partial line (its file was truncated or replaced). */
  reset(): void {
    this.rest = "";
    this.skipping = false;
  }
}
