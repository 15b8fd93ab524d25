import { PathError } from "../errors.js";
import type { BackingLayer, Disk } from "../domain/model.js";
import { discoverChain, type ChainEntry, type ChainTouch, type ChainWalk } from "../images/index.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import type { OriginRule as Rule } from "../ir.js";
import { resolveVolume } from "./volumes.js";

const rule = ruleOf("disk");
const vdpaRule = ruleOf("disk-vdpa");

/** The vhost-vdpa character devices the kernel creates (drivers/vhost/vdpa.c: "vhost-vdpa-%u"). */
const VHOST_VDPA = /^\/dev\/vhost-vdpa-[0-9]+$/;

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
      if (disk.path !== undefined) out.push(...imageRules(ctx, disk, absolute(disk.path, element), element, topPerms));
      break;
    case "volume":
      if (disk.volume) {
        const path = resolveVolume(ctx, element, disk.volume);
        // undefined: a network volume (rbd, gluster, iscsi-direct, mode='direct'...): no host file.
        if (path !== undefined) out.push(...imageRules(ctx, disk, path, element, topPerms));
        else if (disk.backingStore !== undefined) out.push(...networkTopChain(ctx, disk, element));
      }
      break;
    case "dir":
      // A directory exported as a virtual FAT disk: QEMU reads (and may write) the whole tree.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path, element), topPerms, element, "{,/**}"));
      break;
    case "vhostuser":
      // QEMU only connects to the external vhost-user-blk backend's socket.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path, element), "rw", element));
      break;
    case "vhostvdpa":
      // libvirt opens the vhost-vdpa node and passes QEMU its fd (qemuProcessPrepareHostStorageSourceVDPA
      // in qemu_process.c, libvirt 9.2+); QEMU's virtio-blk-vhost-vdpa driver opens it by path
      // when started by hand. Read-write, and only a vhost-vdpa node.
      if (disk.path === undefined) throw new PathError(element, "<disk type='vhostvdpa'> without <source dev=...>");
      if (!VHOST_VDPA.test(disk.path)) {
        throw new PathError(disk.path, `${element}: a vhostvdpa disk's source must be a vhost-vdpa device (/dev/vhost-vdpa-N)`);
      }
      out.push(vdpaRule(disk.path, "rw", element));
      break;
    case "network":
      // QEMU talks to a server for the top, but a layer beneath it may be a local file.
      if (disk.backingStore !== undefined) out.push(...networkTopChain(ctx, disk, element));
      break;
    // nvme: a host device (the hostdev family).
    default:
      break;
  }

  // Persistent reservations: QEMU connects to qemu-pr-helper's socket whatever the disk type.
  if (disk.reservationsSocket !== undefined) {
    out.push(rule(absolute(disk.reservationsSocket, `${element} reservations`), "rw", `${element} reservations`));
  }
  return out;
}

/**
 * The local layers beneath a network top (`<disk type='network'>` whose `<backingStore>` has a
 * `type='file'` or `'block'` layer, e.g. a local base image under an NBD overlay): read-only, as
 * any backing layer, at start only if prepare granted them. With no local top there is no header
 * to walk: the XML's layers are all we grant.
 */
function networkTopChain(ctx: RuleContext, disk: Disk, element: string): Rule[] {
  const out = xmlChainRules(ctx, disk.backingStore ?? [], element, [], disk.backingOpen === true);
  for (const r of out) checkGrantedBefore(ctx, r, r.path);
  return out;
}

/**
 * A local top image (file or block device) plus its data file and backing chain.
 *
 * Who names a file decides what it may get. Files the domain XML names (`<source>`,
 * `<dataStore>`, `<backingStore>` layers) are granted as the XML says. Files named only inside an
 * image header, which the guest itself can rewrite, are granted read-only, only as backing layers
 * (or their own files) below the top, only inside the directory tree of the top image, and never
 * when another guest's profile grants them writable (headerNamedCheck). The top's header is read
 * only when the XML says nothing about the chain: a complete XML `<backingStore>` is the whole
 * chain, and an open one is walked on from its last layer's header (as libvirt probes it).
 * At start and reconnect no image file outside what prepare granted is added (grantedBefore).
 */
function imageRules(ctx: RuleContext, disk: Disk, top: string, element: string, topPerms: string): Rule[] {
  const chain: Rule[] = [];
  if (disk.dataStore) chain.push(...layerRules([disk.dataStore], ctx, element, () => [topPerms, `${element} data-file`]));
  if (disk.backingStore !== undefined && disk.backingOpen !== true) {
    // A complete chain (it ends in `<backingStore/>`): libvirt walked it (start XML) or the admin
    // wrote it, and libvirt hands QEMU exactly these layers (-blockdev, one node per layer, each
    // with its `backing` set: qemuBlockStorageSourceChainAttach in libvirt's qemu_block.c), so
    // QEMU never opens the backing file a header names. The top's header is not read at all: a
    // header that does not parse cannot fail a chain the XML states, and a running guest can
    // rewrite its headers but not the XML. This is no weaker than reading headers: the XML is
    // untrusted too, and every layer it names is judged by the policy like any path (the rules
    // below go through the same policy as the top), read-only, and at start must have been
    // granted at prepare (checkGrantedBefore).
    chain.push(...xmlChainRules(ctx, disk.backingStore, element, imageTrees(ctx, top)));
  } else {
    // An open chain (layers named but no closing `<backingStore/>`): libvirt takes the layers it
    // was given as they are and probes only below the last one (docs/kbase/backing_chains.rst:
    // "probing from the last specified <backingStore>. Any image specified explicitly will not be
    // probed"). So the top's header is not read at all; the walk starts at the last XML layer.
    if (disk.backingStore !== undefined) chain.push(...xmlChainRules(ctx, disk.backingStore, element, imageTrees(ctx, top), true));
    else chain.push(...headerChain(ctx, disk, top, element).map((e) => chainRule(e, element)));
  }
  for (const r of chain) checkGrantedBefore(ctx, r, r.path);
  return [rule(top, topPerms, element), ...chain];
}

/**
 * The layers an XML chain names, and the files each layer's own header makes QEMU open: a qcow2
 * layer's external data file (libvirt before 10.10 never writes a backing layer's `<dataStore>`,
 * and QEMU then opens the data file its header names: qcow2_do_open in QEMU's block/qcow2.c) and
 * a vmdk layer's extents. Only the layer's own header is read (no backing name is followed), and
 * what it names is judged as header-named (headerNamedCheck: read-only, in the directory tree of
 * the top or of that layer, granted at prepare when this is start). Without this, the data file
 * prepare found through the headers vanished from the `.files` at start.
 */
function xmlChainRules(ctx: RuleContext, layers: BackingLayer[], element: string, trees: string[], open = false): Rule[] {
  const out = layerRules(layers, ctx, element, (n) => ["rk", `${element} backing ${n}`]);
  for (const [i, layer] of layers.entries()) {
    if (layer.type === "network") continue;
    if (layer.path === undefined || layer.format === undefined || !HEADER_FORMATS.has(layer.format)) continue;
    // An open chain's last layer: its header's backing chain is walked too (what libvirt probes),
    // counted from that layer's depth, the names in it judged against the top's tree and its own.
    const follow = open && i === layers.length - 1 ? Math.max(ctx.maxBackingDepth - layers.length, 1) : 0;
    out.push(...layerOwnFiles(ctx, layer, i + 1, element, trees, follow).map((e) => chainRule(e, element)));
  }
  return out;
}

const HEADER_FORMATS = new Set(["qcow2", "qed", "vmdk"]);

/** The data file and extents one XML-named layer's header names (depth = the layer's number). */
function layerOwnFiles(ctx: RuleContext, layer: BackingLayer, depth: number, element: string, trees: string[], follow = 0): ChainEntry[] {
  const { images } = ctx;
  const path = absolute(layer.path!, `${element} backing ${depth}`);
  // The policy's verdict first (the hook runs as root), then: a layer that is not there has no
  // header to read; QEMU will fail to open it, and its own rule says what was granted.
  const real = named(`${element} backing ${depth}`, () => images.vet(rule(path, "r", `${element} backing ${depth}`)).path, element);
  try {
    if (ctx.fs.stat(real) === undefined) return [];
  } catch {
    // ENOTDIR, EACCES...: the walk's type check names it
  }
  const layerTrees = [...new Set([...trees, ...imageTrees(ctx, path)])];
  const walk: ChainWalk = {
    canonical: (p) => images.canonical(p),
    topDataFileFromXml: layer.dataStore !== undefined,
    touch(entry) {
      const shifted = { ...entry, depth: entry.depth + depth };
      const real = images.vet(rule(shifted.path, "r", chainRule(shifted, element).source)).path;
      if (entry.namedBy !== undefined) headerNamedCheck(ctx, shifted, real, layerTrees, element);
      return real;
    },
  };
  let entries: ChainEntry[];
  try {
    entries = discoverChain(ctx.fs, path, layer.format, follow, walk);
  } catch (err) {
    // The layer's own header does not parse (or is not a file we read): the XML states the
    // chain, so that is not a refusal; we learn no data file from it, and QEMU, which opens the
    // same bytes, fails on it itself. A refusal of a file the header names (policy, provenance,
    // not granted at prepare) carries that file's path and still refuses.
    if (err instanceof PathError && err.path === real) return [];
    return named(`${element} backing ${depth}`, () => {
      throw err;
    }, element);
  }
  return entries.map((e) => ({ ...e, depth: e.depth + depth }));
}

/** The directory trees of an image: where the XML names it, and where its symlinks lead. */
function imageTrees(ctx: RuleContext, image: string): string[] {
  try {
    return [...new Set([ctx.images.canonical(dirname(image)), dirname(ctx.images.canonical(image))])];
  } catch {
    return [];
  }
}

/**
 * Runs an image walk and makes every refusal from it name the element: the walk (src/images/)
 * knows files, not disks. A reason that already names the element is left alone.
 */
function named<T>(element: string, run: () => T, disk = element): T {
  try {
    return run();
  } catch (err) {
    // The policy's refusals already name their source ("resolves to X: disk vda backing 1: ...").
    const namesIt = err instanceof PathError && (err.reason.startsWith(`${disk} `) || err.reason.startsWith(`${disk}:`) || err.reason.startsWith("resolves to "));
    if (err instanceof PathError && !namesIt) {
      throw new PathError(err.path, `${element}: ${err.reason}`);
    }
    throw err;
  }
}

/**
 * Rules for XML-described layers, outermost first, numbered from 1 as in the XML. A network layer
 * has no host file, but a `type='file'` layer beneath it is a local file: libvirt passes every
 * layer of the XML's chain to QEMU as its own -blockdev node (qemu_block.c), so it is granted.
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
    if (layer.type === "network") continue;
    const [perms, source] = permsAndSource(i + 1);
    if (layer.path !== undefined) out.push(rule(absolute(layer.path, source), perms, source));
    // A backing layer's own `<dataStore>` (libvirt 10.10+): read-only like its layer.
    if (layer.dataStore?.path !== undefined && layer.dataStore.type !== "network") {
      out.push(rule(absolute(layer.dataStore.path, `${source} data-file`), perms, `${source} data-file`));
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
  const trees = named(element, () => [...new Set([images.canonical(dirname(top)), dirname(images.canonical(top))])]);
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
  return named(element, () => discoverChain(ctx.fs, top, disk.format, ctx.maxBackingDepth, walk));
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
    if (disk.type !== "file" && disk.type !== "block" && disk.type !== "network") continue;
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
