import { PathError } from "../errors.js";
import type { BackingLayer, Disk } from "../domain/model.js";
import { discoverChain, type ChainEntry, type ChainTouch, type ChainWalk } from "../images/index.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import type { OriginRule as Rule } from "../ir.js";
import { resolveVolume } from "./volumes.js";

const rule = ruleOf("disk");

/**
 * Disks: the image QEMU writes, everything it reads beneath it, and the sockets a disk talks to.
 *
 * The top image is read-write-lock (`rwk`; `rk` when the disk is read-only; `shareable` changes
 * nothing, QEMU still writes it). Every deeper backing layer is `rk` with no `deny w`, so
 * block-commit and backups keep working. The top's `<dataStore>` carries the top's permissions;
 * nothing named only by an image header is ever writable (imageRules).
 */
export const diskRules: RuleFamily = (ctx) =>
  ctx.domain.devices.disks.flatMap((disk, index) => rulesForDisk(ctx, disk, `disk ${disk.target ?? index}`));

function rulesForDisk(ctx: RuleContext, disk: Disk, element: string): Rule[] {
  const out: Rule[] = [];
  const topPerms = disk.readonly ? "rk" : "rwk";

  switch (disk.type) {
    case "file":
    case "block":
      if (disk.path !== undefined) out.push(...imageRules(ctx, disk, absolute(disk.path), element, topPerms));
      break;
    case "volume":
      if (disk.volume) {
        const path = resolveVolume(ctx, element, disk.volume.pool, disk.volume.volume);
        out.push(...imageRules(ctx, disk, path, element, topPerms));
      }
      break;
    case "dir":
      // A directory exported as a virtual FAT disk: QEMU reads (and may write) the whole tree.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path), topPerms, element, "{,/**}"));
      break;
    case "vhostuser":
      // QEMU only connects to the external vhost-user-blk backend's socket.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path), "rw", element));
      break;
    // network: QEMU talks to a server, no host file. nvme: a host device (the hostdev family).
    default:
      break;
  }

  // Persistent reservations: QEMU connects to qemu-pr-helper's socket whatever the disk type.
  if (disk.reservationsSocket !== undefined) {
    out.push(rule(absolute(disk.reservationsSocket), "rw", `${element} reservations`));
  }
  return out;
}

/**
 * A local top image (file or block device) plus its data file and backing chain.
 *
 * Who names a file decides what it may get. Files the domain XML names (`<source>`,
 * `<dataStore>`, `<backingStore>` layers) are granted as the XML says. Files named only inside an
 * image header, which the guest itself can rewrite, are granted read-only, only as backing layers
 * (or their own files) below the top, only inside the directory tree of the top image, and never
 * when another guest's profile grants them writable (headerNamedCheck). Headers are read only when
 * the XML says nothing about the chain: an XML `<backingStore>` is taken as the whole chain.
 * At start and reconnect no image file outside what prepare granted is added (grantedBefore).
 */
function imageRules(ctx: RuleContext, disk: Disk, top: string, element: string, topPerms: string): Rule[] {
  const chain: Rule[] = [];
  if (disk.dataStore) chain.push(...layerRules([disk.dataStore], ctx, element, () => [topPerms, `${element} data-file`]));
  if (disk.backingStore !== undefined) {
    // libvirt walked the chain (start XML), or the admin wrote it: the XML's chain is the chain,
    // and no header is read (a running guest can rewrite its headers; the XML it cannot).
    chain.push(...layerRules(disk.backingStore, ctx, element, (n) => ["rk", `${element} backing ${n}`]));
  } else {
    chain.push(...headerChain(ctx, disk, top, element).map((e) => chainRule(e, element)));
  }
  for (const r of chain) checkGrantedBefore(ctx, r, r.path);
  return [rule(top, topPerms, element), ...chain];
}

/**
 * Rules for XML-described layers, outermost first, numbered from 1. A network layer ends the
 * chain: what lies beneath it is named relative to that server, not to this host.
 */
function layerRules(
  layers: BackingLayer[],
  ctx: RuleContext,
  element: string,
  permsAndSource: (n: number) => [string, string],
): Rule[] {
  if (layers.length > ctx.maxBackingDepth) {
    throw new PathError(element, `backing chain is deeper than ${ctx.maxBackingDepth} layers`);
  }
  const out: Rule[] = [];
  for (const [i, layer] of layers.entries()) {
    if (layer.type === "network") break;
    const [perms, source] = permsAndSource(i + 1);
    if (layer.path !== undefined) out.push(rule(absolute(layer.path), perms, source));
    // A backing layer's own `<dataStore>` (libvirt 10.10+): read-only like its layer.
    if (layer.dataStore?.path !== undefined && layer.dataStore.type !== "network") {
      out.push(rule(absolute(layer.dataStore.path), perms, `${source} data-file`));
    }
  }
  return out;
}

/** A file the header walk found: always read-only (only XML-named files are ever writable). */
function chainRule(entry: Omit<ChainEntry, "format">, element: string): Rule {
  const owner = entry.depth === 0 ? element : `${element} backing ${entry.depth}`;
  const source = entry.kind === "backing" ? owner : `${owner} ${entry.kind}`;
  return rule(entry.path, "rk", source);
}

/**
 * Whether QEMU will interpret the top image's header at all. libvirt's qemu driver turns a missing
 * `<driver type>` into raw, and QEMU never follows anything from a raw image; reading its header
 * anyway would let a guest that writes a fake qcow2 header into its own disk claim host files.
 * (discoverChain refuses raw tops too; checking here as well keeps that rule visible where disks
 * are decided.) A top that does not exist (an optional cdrom that is gone) has no header: QEMU
 * will not open it either, so it gets its own rule and nothing else instead of an error.
 */
function hasHeaderToRead(ctx: RuleContext, disk: Disk, top: string): boolean {
  if (disk.format === undefined || disk.format === "raw") return false;
  // The canonical path: the kernel would follow an absolute symlink out of --root.
  try {
    return ctx.fs.stat(ctx.images.canonical(top)) !== undefined;
  } catch {
    return true; // ENOTDIR, EACCES...: the walk's type check says so in one line
  }
}

/** The whole chain from image headers (prepare XML carries no `<backingStore>`). */
function headerChain(ctx: RuleContext, disk: Disk, top: string, element: string): ChainEntry[] {
  if (!hasHeaderToRead(ctx, disk, top)) return [];
  const { images } = ctx;
  // The top's directory tree: where the XML names it, and where its symlinks lead.
  const trees = [...new Set([images.canonical(dirname(top)), dirname(images.canonical(top))])];
  const walk: ChainWalk = {
    canonical: (p) => images.canonical(p),
    topDataFileFromXml: disk.dataStore !== undefined,
    touch(entry) {
      // The policy's verdict before anything is stat'ed or read: the hook runs as root, and an
      // error about a corrupt header must never describe a file the guest may not have.
      const real = images.vet(rule(entry.path, "r", chainRule(entry, element).source)).path;
      if (entry.namedBy !== undefined) headerNamedCheck(ctx, entry, real, trees, element);
      return real;
    },
  };
  return discoverChain(ctx.fs, top, disk.format, ctx.maxBackingDepth, walk);
}

/**
 * The rule for a file named only inside an image header (the guest can write that header):
 * read-only, a backing layer or a backing layer's own file (never the top's data file or
 * extents, which QEMU writes), a regular file inside the top image's directory tree, not granted
 * writable to another guest, and at start/reconnect already granted by prepare.
 */
function headerNamedCheck(ctx: RuleContext, entry: ChainTouch, real: string, trees: string[], element: string): void {
  const source = chainRule(entry, element).source;
  const refuse = (why: string) => new PathError(real, `${source}: named only by the header of ${entry.namedBy}: ${why}`);
  if (entry.depth === 0) {
    throw refuse(
      entry.kind === "data-file"
        ? "the top image's data file must be declared with <dataStore> in the domain XML"
        : "the top image's extent files must be named by the domain XML, which has no element for them (convert the image: qemu-img convert -O qcow2)",
    );
  }
  checkGrantedBefore(ctx, rule(real, "rk", source), real);
  // A file the domain XML itself names for one of this guest's disks (its top, a layer, a data
  // file) is the guest's by the XML's word, wherever it lies: a snapshot overlay or copy
  // destination made in another directory names the disk's current top in its header.
  if (!trees.some((tree) => isUnder(real, tree)) && !xmlNamed(ctx).has(real)) {
    throw refuse(`outside ${trees.join(" and ")}, the directory tree of the disk image (name the layer in <backingStore> to grant it)`);
  }
  if (isBlockDevice(ctx, real) && !xmlNamed(ctx).has(real)) throw refuse("a block device is granted only when the domain XML names it");
  const other = ctx.images.writableByOtherGuest(real);
  if (other !== undefined) throw refuse(`guest ${other} holds it writable`);
}

/**
 * At start and reconnect: an image-chain file must already be granted, with at least these
 * permissions, by the `.files` prepare wrote. Headers (or a start XML derived from them) can
 * only narrow what the guest runs with; a new file needs a new prepare, i.e. a restart.
 */
function checkGrantedBefore(ctx: RuleContext, r: Rule, shownAs: string): void {
  const before = ctx.images.grantedBefore;
  if (before === undefined) return;
  const real = ctx.images.canonical(r.path);
  const perms = before(real);
  if (perms !== undefined && [...r.perms].every((p) => perms.includes(p))) return;
  throw new PathError(
    shownAs,
    `${r.source}: not granted ${perms === undefined ? "at all" : `"${r.perms}" (only "${perms}")`} when the guest was prepared; start and reconnect never add an image file (restart the guest)`,
  );
}

/** The canonical paths of every local file the domain XML names for a disk (top, layers, data files). */
function xmlNamed(ctx: RuleContext): Set<string> {
  const out = new Set<string>();
  const add = (p: string | undefined) => {
    if (p === undefined || !p.startsWith("/")) return;
    try {
      out.add(ctx.images.canonical(p));
    } catch {
      // unresolvable: it names nothing the walk could have reached
    }
  };
  for (const disk of ctx.domain.devices.disks) {
    if (disk.type !== "file" && disk.type !== "block") continue;
    add(disk.path);
    add(disk.dataStore?.path);
    for (const layer of disk.backingStore ?? []) {
      add(layer.path);
      add(layer.dataStore?.path);
    }
  }
  return out;
}

/** Errors (ENOTDIR, EACCES...) are left to the walk's own type check, which names them. */
function isBlockDevice(ctx: RuleContext, p: string): boolean {
  try {
    return ctx.fs.stat(p)?.isBlockDevice() === true;
  } catch {
    return false;
  }
}

/** Whether `p` is `dir` or lies below it (whole components). */
function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);
}

function dirname(p: string): string {
  const slash = p.lastIndexOf("/");
  return slash <= 0 ? "/" : p.slice(0, slash);
}
