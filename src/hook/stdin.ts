/**
 * The domain XML libvirt writes on stdin, read whole but bounded: past `limit` bytes the rest is
 * drained and dropped (libvirt must be able to finish writing; a hook that stops reading early
 * can leave it with a broken pipe) and `truncated` says so.
 */
export async function readStdin(limit: number): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
      if (size >= limit) {
        truncated = true;
        continue;
      }
      const room = limit - size;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        size = limit;
        truncated = true;
      } else {
        chunks.push(chunk);
        size += chunk.length;
      }
    }
  } catch {
    // stdin closed or not readable (e.g. started by hand without input): what we have is the input.
  }
  return { data: Buffer.concat(chunks, size), truncated };
}
