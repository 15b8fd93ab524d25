/**
 * Bounds on hostile domain XML. Each limit is far above anything libvirt produces (a 500-disk
 * domain is ~300 KB, ~5,000 elements, depth ~8 plus one level per backing-chain layer), and far
 * below what could hurt the hook (time, memory, stack).
 */

/** Whole document. libvirt's own clients cap XML at 10 MiB (virsh) and 32 MiB (RPC message). */
export const MAX_XML_BYTES = 16 * 1024 * 1024;

/**
 * Element nesting. `<backingStore>` nests one level per layer, so this must exceed the backing
 * depth the rules accept (64) plus the ~5 levels above a disk; 256 is still trivially
 * stack-safe for the parser's recursive tree conversion.
 */
export const MAX_DEPTH = 256;

/** Elements plus attributes in the whole document: bounds parser time and tree memory. */
export const MAX_MARKUP_ITEMS = 250_000;

/** Any single attribute value or element text we read (PATH_MAX is 4096). */
export const MAX_VALUE_CHARS = 4096;

/** Domain names (libvirt has no limit of its own; this keeps error lines and paths sane). */
export const MAX_NAME_CHARS = 1024;
