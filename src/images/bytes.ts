/** Bounded, positioned reads from one opened image; parsers see nothing else of the host. */
export interface ImageBytes {
  /** Host path of the image, for messages. */
  readonly path: string;
  /** Up to `length` bytes at `position`; shorter only at end of file. */
  readAt(position: number, length: number): Buffer;
}

/** An in-memory image (tests, and headers already read). */
export function bytesOf(path: string, data: Buffer): ImageBytes {
  return { path, readAt: (position, length) => data.subarray(position, position + length) };
}

/** What one layer's header says QEMU will open besides the layer itself. Names are raw. */
export interface LayerRefs {
  backing?: { name: string; format?: string };
  /** qcow2 external data file name (only when the incompatible feature bit says it is used). */
  dataFile?: string;
  /** vmdk extent file names, in descriptor order. */
  extents: string[];
}
