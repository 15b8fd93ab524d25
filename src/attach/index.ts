/**
 * How a guest's QEMU gets into its profile `libvirt-<uuid>` (the attach modes of docs/attach-modes.md),
 * as pure text edits of a libvirt domain XML:
 *  - wrapper:  `<devices><emulator>` points at the wrapper symlink of the same name
 *              (`/usr/lib/virt-aa-hook/bin/qemu-system-x86_64`), which execs the real QEMU in
 *              `emulator_dir` after requesting the transition;
 *  - seclabel: the domain carries a static AppArmor label, so libvirt makes the transition itself
 *              and never runs its own profile generator;
 *  - helper:   the domain carries no AppArmor label but libvirt's dynamic one (nothing of ours in
 *              its XML): libvirt's driver labels it and runs virt-aa-helper, diverted to ours;
 *  - none:     the admin attaches some other way; nothing to edit.
 *
 * Every edit replaces or inserts one element and leaves every other byte of the XML as it was, so
 * what `virsh define` gets differs from what the admin wrote only where adoption needs it.
 */
import type { Domain } from "../domain/model.js";
import { isCanonicalUuid } from "../names.js";
import { firstIllegalChar } from "../xml/chars.js";
import { escapeText, scanXml, XmlError, type XmlNode } from "../xml/reader.js";

export type AttachMode = "wrapper" | "seclabel" | "helper" | "none";

export interface AttachPaths {
  /** Directory of the wrapper symlinks, one per emulator name. */
  wrapperDir: string;
  /** Directory of the real emulators (config `emulator_dir`). */
  emulatorDir: string;
}

/** Names the wrapper agrees to stand in for (same rule as hooks/qemu-wrapper). */
export const EMULATOR_NAME = /^(qemu-system-[a-z0-9][a-z0-9_.-]*|qemu-kvm|kvm)$/;

/** A domain that cannot be switched to (or back from) a mode; the message names what and why. */
export class AttachError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AttachError";
  }
}

export function profileLabel(uuid: string): string {
  return `libvirt-${uuid}`;
}

/** One `<seclabel>` of the domain, with what adoption looks at (attributes decoded). */
interface Seclabel {
  node: XmlNode;
  type?: string;
  model?: string;
  relabel?: string;
  label?: string;
}

/** The exact static label that seclabel mode adds (and undo removes). */
function isOurSeclabel(s: Seclabel, uuid: string): boolean {
  return s.type === "static" && s.model === "apparmor" && s.relabel === "no" && s.label === profileLabel(uuid);
}

interface Parsed {
  xml: string;
  name: string;
  uuid: string;
  emulator?: { node: XmlNode; path: string };
  seclabels: Seclabel[];
  root: XmlNode;
}

function unreadable(reason: string): AttachError {
  return new AttachError(`cannot read domain XML: ${reason}`);
}

/** Runs a decoding read; a reference XML forbids is an AttachError like the scanner's complaints. */
function decoded<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof XmlError) throw unreadable(err.reason);
    throw err;
  }
}

function parse(xml: string): Parsed {
  const illegal = firstIllegalChar(xml);
  if (illegal) throw unreadable(`character ${illegal.codePoint} is not allowed in XML (offset ${illegal.index})`);
  const { roots, elements } = decoded(() => scanXml(xml));
  const root = roots[0];
  if (!root || root.name !== "domain") throw unreadable("the root element is not <domain>");
  const only = (p: string): XmlNode | undefined => {
    const found = elements.filter((e) => e.path === p);
    if (found.length > 1) throw new AttachError(`domain XML has ${found.length} <${p.replace(/\//g, "><")}> elements`);
    return found[0];
  };
  const nameNode = only("domain/name");
  const name = (nameNode && decoded(() => nameNode.text())?.trim()) || "-";
  // Names are printed in every report line and passed to the hook: one line, no escapes.
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(name);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw unreadable(`<name> contains control character U+${code}`);
  }
  const uuidNode = only("domain/uuid");
  const uuid = (uuidNode && decoded(() => uuidNode.text())?.trim().toLowerCase()) ?? "";
  if (!isCanonicalUuid(uuid)) throw new AttachError(`${name}: <uuid> "${uuid}" is not a canonical UUID`);
  const emulatorNode = only("domain/devices/emulator");
  let emulator: Parsed["emulator"];
  if (emulatorNode) {
    const text = decoded(() => emulatorNode.text());
    if (text === undefined) throw new AttachError(`${name}: <emulator> has child elements`);
    emulator = { node: emulatorNode, path: text.trim() };
  }
  const seclabels = root.childrenNamed("seclabel").map((node) =>
    decoded((): Seclabel => {
      const labelNode = node.childrenNamed("label")[0];
      const label = labelNode?.text()?.trim();
      const [type, model, relabel] = [node.attribute("type"), node.attribute("model"), node.attribute("relabel")];
      return {
        node,
        ...(type !== undefined ? { type } : {}),
        ...(model !== undefined ? { model } : {}),
        ...(relabel !== undefined ? { relabel } : {}),
        ...(label !== undefined ? { label } : {}),
      };
    }),
  );
  return { xml, name, uuid, emulator, seclabels, root };
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

function applyEdits(xml: string, edits: Edit[]): string {
  let out = xml;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}
function basename(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}
function sameDir(a: string, b: string): boolean {
  const norm = (d: string) => (d.length > 1 ? d.replace(/\/+$/, "") : d);
  return norm(a) === norm(b);
}

/** Replace the emulator's text, keeping the element's tags (and any attributes) as written. */
function emulatorEdit(p: Parsed, newPath: string): Edit | undefined {
  const em = p.emulator!;
  if (em.path === newPath) return undefined;
  if (em.node.selfClosing) {
    return { start: em.node.start, end: em.node.end, text: `<emulator>${escapeText(newPath)}</emulator>` };
  }
  return { start: em.node.openEnd, end: em.node.closeStart, text: escapeText(newPath) };
}

/** Remove an element together with its line when it is alone on that line. */
function removal(xml: string, node: XmlNode): Edit {
  let start = node.start;
  while (start > 0 && (xml[start - 1] === " " || xml[start - 1] === "\t")) start--;
  let end = node.end;
  const lineStart = start === 0 || xml[start - 1] === "\n";
  if (lineStart && xml[end] === "\n") return { start, end: end + 1, text: "" };
  if (lineStart && xml.startsWith("\r\n", end)) return { start, end: end + 2, text: "" };
  return { start: node.start, end: node.end, text: "" };
}

/** Insert the static label as the last child of <domain>, indented like its other children. */
function seclabelInsertion(p: Parsed): Edit {
  const label = escapeText(profileLabel(p.uuid));
  const close = p.root.closeStart;
  let lineStart = close;
  while (lineStart > 0 && (p.xml[lineStart - 1] === " " || p.xml[lineStart - 1] === "\t")) lineStart--;
  const child = p.root.children[0];
  const indentOf = (s: XmlNode): string => {
    let b = s.start;
    while (b > 0 && (p.xml[b - 1] === " " || p.xml[b - 1] === "\t")) b--;
    return b === 0 || p.xml[b - 1] === "\n" ? p.xml.slice(b, s.start) : "";
  };
  if (lineStart > 0 && p.xml[lineStart - 1] === "\n" && child) {
    const ind = indentOf(child);
    const step = ind || "  ";
    const nl = p.xml[lineStart - 2] === "\r" ? "\r\n" : "\n";
    return {
      start: lineStart,
      end: lineStart,
      text:
        `${ind}<seclabel type='static' model='apparmor' relabel='no'>${nl}` +
        `${ind}${step}<label>${label}</label>${nl}` +
        `${ind}</seclabel>${nl}`,
    };
  }
  return { start: close, end: close, text: `<seclabel type='static' model='apparmor' relabel='no'><label>${label}</label></seclabel>` };
}

function wrapperEdits(p: Parsed, paths: AttachPaths): Edit[] {
  if (!p.emulator) throw new AttachError(`${p.name}: no <devices><emulator>: cannot point it at the wrapper`);
  const current = p.emulator.path;
  const name = basename(current);
  if (!EMULATOR_NAME.test(name)) {
    throw new AttachError(`${p.name}: <emulator> ${current}: "${name}" is not a QEMU emulator name the wrapper stands in for`);
  }
  const dir = dirname(current);
  if (!sameDir(dir, paths.wrapperDir) && !sameDir(dir, paths.emulatorDir)) {
    throw new AttachError(
      `${p.name}: <emulator> ${current} is not in emulator_dir ${paths.emulatorDir}: the wrapper would run a different QEMU`,
    );
  }
  const edit = emulatorEdit(p, `${paths.wrapperDir.replace(/\/+$/, "")}/${name}`);
  return edit ? [edit] : [];
}

/** Edits that return the emulator to the real QEMU and drop our static label. */
function undoEdits(p: Parsed, paths: AttachPaths): Edit[] {
  const edits: Edit[] = [];
  if (p.emulator && sameDir(dirname(p.emulator.path), paths.wrapperDir)) {
    const edit = emulatorEdit(p, `${paths.emulatorDir.replace(/\/+$/, "")}/${basename(p.emulator.path)}`);
    if (edit) edits.push(edit);
  }
  for (const s of p.seclabels) {
    if (isOurSeclabel(s, p.uuid)) edits.push(removal(p.xml, s.node));
  }
  return edits;
}

function seclabelEdits(p: Parsed, paths: AttachPaths): Edit[] {
  const edits: Edit[] = [];
  // Leave the wrapper if it was there: libvirt makes the transition now.
  if (p.emulator && sameDir(dirname(p.emulator.path), paths.wrapperDir)) {
    const edit = emulatorEdit(p, `${paths.emulatorDir.replace(/\/+$/, "")}/${basename(p.emulator.path)}`);
    if (edit) edits.push(edit);
  }
  for (const s of p.seclabels) {
    const { type, model } = s;
    if (type === "none" && model === undefined) {
      throw new AttachError(`${p.name}: <seclabel type='none'/> turns off every security driver: remove it, or use attach = "wrapper"`);
    }
  }
  const apparmor = p.seclabels.filter((s) => s.model === "apparmor");
  if (apparmor.length === 1 && isOurSeclabel(apparmor[0]!, p.uuid)) return edits;
  // Any other AppArmor label (dynamic, none, another profile) is replaced by ours.
  for (const s of apparmor) edits.push(removal(p.xml, s.node));
  edits.push(seclabelInsertion(p));
  return edits;
}

/**
 * Edits for helper mode: back to the real QEMU, and every AppArmor label that is not dynamic
 * (static, ours or another; type='none') taken out, so libvirt's driver labels the domain
 * dynamically and runs virt-aa-helper (ours) for it. `<seclabel type='none'/>` without a model
 * turns every driver off: refused, as for seclabel.
 */
function helperEdits(p: Parsed, paths: AttachPaths): Edit[] {
  const edits: Edit[] = [];
  if (p.emulator && sameDir(dirname(p.emulator.path), paths.wrapperDir)) {
    const edit = emulatorEdit(p, `${paths.emulatorDir.replace(/\/+$/, "")}/${basename(p.emulator.path)}`);
    if (edit) edits.push(edit);
  }
  for (const s of p.seclabels) {
    if (s.type === "none" && s.model === undefined) {
      throw new AttachError(`${p.name}: <seclabel type='none'/> turns off every security driver: remove it, or use attach = "wrapper"`);
    }
    if (s.model === "apparmor" && s.type !== "dynamic") edits.push(removal(p.xml, s.node));
  }
  return edits;
}

/**
 * The domain XML switched to `mode`: emulator path (wrapper) or static label (seclabel), after
 * undoing the other mode. Returns the input unchanged when it is already adopted.
 * Throws AttachError when the domain cannot be adopted (message names the domain and the reason).
 */
export function adoptXml(xml: string, mode: AttachMode, paths: AttachPaths): string {
  const p = parse(xml);
  switch (mode) {
    case "wrapper": {
      const ours = p.seclabels.filter((s) => isOurSeclabel(s, p.uuid)).map((s) => removal(xml, s.node));
      return applyEdits(xml, [...wrapperEdits(p, paths), ...ours]);
    }
    case "seclabel":
      return applyEdits(xml, seclabelEdits(p, paths));
    case "helper":
      return applyEdits(xml, helperEdits(p, paths));
    case "none":
      return applyEdits(xml, undoEdits(p, paths));
  }
}

/** The domain XML with our emulator path and our static label taken out again. */
export function undoXml(xml: string, paths: AttachPaths): string {
  const p = parse(xml);
  return applyEdits(xml, undoEdits(p, paths));
}

/**
 * Why the parsed domain is not adopted for `attach`; undefined when it is. `paths`: where the
 * wrapper is (Layout has both members).
 */
export function adoptionProblem(domain: Pick<Domain, "uuid" | "emulator" | "seclabels">, attach: AttachMode, paths: AttachPaths): string | undefined {
  switch (attach) {
    case "none":
      return undefined;
    case "wrapper": {
      const em = domain.emulator;
      if (!em) return "no <emulator>: it must be a wrapper in " + paths.wrapperDir;
      if (!sameDir(dirname(em), paths.wrapperDir) || !EMULATOR_NAME.test(basename(em))) {
        return `<emulator> ${em} is not the virt-aa-hook wrapper (${paths.wrapperDir}/<emulator name>)`;
      }
      return undefined;
    }
    case "seclabel":
      return hasOurStaticLabel(domain) ? undefined : `no <seclabel type='static' model='apparmor' relabel='no'><label>${profileLabel(domain.uuid)}</label>`;
    case "helper":
      return helperProblem(domain, paths);
  }
}

/**
 * helper mode: libvirt's AppArmor driver runs virt-aa-helper (ours) only for a domain it labels
 * dynamically. Why this domain is not such a one; undefined when it is.
 */
function helperProblem(domain: Pick<Domain, "uuid" | "emulator" | "seclabels">, paths: AttachPaths): string | undefined {
  if (domain.seclabels.some((s) => s.type === "none" && s.model === undefined)) {
    return "<seclabel type='none'/> turns off every security driver: libvirt runs no virt-aa-helper for it and its QEMU runs unconfined";
  }
  if (hasOurStaticLabel(domain)) {
    return `static label ${profileLabel(domain.uuid)} (adopted for attach = "seclabel"): libvirt runs no virt-aa-helper for it, so hotplug, media changes, snapshots and block jobs get no grant`;
  }
  const other = domain.seclabels.find((s) => s.model === "apparmor" && s.type !== "dynamic");
  if (other) {
    return `<seclabel type='${other.type ?? ""}' model='apparmor'>${other.label !== undefined ? ` (label ${other.label})` : ""}: libvirt runs no virt-aa-helper for it and its QEMU does not run in ${profileLabel(domain.uuid)}`;
  }
  const em = domain.emulator;
  if (em !== undefined && sameDir(dirname(em), paths.wrapperDir)) {
    return `<emulator> ${em} is the virt-aa-hook wrapper: attach = "helper" needs the real QEMU (libvirt's driver makes the transition)`;
  }
  return undefined;
}

/** The domain carries our static label for its own UUID (adopted with attach = "seclabel"). */
export function hasOurStaticLabel(domain: Pick<Domain, "uuid" | "seclabels">): boolean {
  const label = profileLabel(domain.uuid);
  return domain.seclabels.some((s) => s.type === "static" && s.model === "apparmor" && s.relabel === false && s.label === label);
}

/** What adoption depends on, read straight from domain XML (for doctor, without the full model). */
export function attachFacts(xml: string): { name: string } & Pick<Domain, "uuid" | "emulator" | "seclabels"> {
  const p = parse(xml);
  const seclabels = p.seclabels.map((s) => {
    const { type, model, relabel } = s;
    return {
      ...(type !== undefined ? { type } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(relabel !== undefined ? { relabel: relabel === "yes" } : {}),
      ...(s.label !== undefined ? { label: s.label } : {}),
    };
  });
  return { name: p.name, uuid: p.uuid, ...(p.emulator ? { emulator: p.emulator.path } : {}), seclabels };
}
