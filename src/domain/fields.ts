/** Typed attribute and text readers: an XmlElement plus a value check, failing at that element. */
import type { PciAddress } from "./model.js";
import type { XmlElement } from "./tree.js";
import { pathLimitProblem } from "./limits.js";
import { checkLabel, checkToken, parseCUnsigned, parseUuid, parseYesNo } from "./values.js";

/** An enumeration-like attribute ("type", "model", ...), or undefined. */
export function token(el: XmlElement, name: string): string | undefined {
  const raw = el.attr(name);
  return raw === undefined ? undefined : el.convert(`attribute "${name}"`, raw, checkToken);
}

export function requireToken(el: XmlElement, name: string): string {
  return token(el, name) ?? el.fail(`missing attribute "${name}"`);
}

/** A yes/no attribute; absent means `fallback`. */
export function yesNo(el: XmlElement, name: string, fallback = false): boolean {
  const raw = el.attr(name);
  return raw === undefined ? fallback : el.convert(`attribute "${name}"`, raw, parseYesNo);
}

/** A host path attribute, kept as written; an empty value means no path (libvirt treats it so). */
export function path(el: XmlElement | undefined, name: string): string | undefined {
  const raw = el?.attr(name);
  if (raw === undefined || raw === "") return undefined;
  const problem = pathLimitProblem(raw);
  return problem ? el!.fail(`attribute "${name}": ${problem}`) : raw;
}

/** A host path given as element text (`<kernel>`, `<loader>`, ...); empty means none. */
export function textPath(el: XmlElement | undefined): string | undefined {
  const raw = el?.text();
  if (raw === undefined || raw === "") return undefined;
  const problem = pathLimitProblem(raw);
  return problem ? el!.fail(problem) : raw;
}

/** Free text used in labels (channel names, target devs): no control characters. */
export function label(el: XmlElement, name: string): string | undefined {
  const raw = el.attr(name);
  return raw === undefined ? undefined : el.convert(`attribute "${name}"`, raw, checkLabel);
}

export function cUnsigned(el: XmlElement, name: string, max: number): number | undefined {
  const raw = el.attr(name);
  return raw === undefined ? undefined : el.convert(`attribute "${name}"`, raw, (v) => parseCUnsigned(v, max));
}

export function uuidAttr(el: XmlElement, name: string): string {
  return el.convert(`attribute "${name}"`, el.requireAttr(name), parseUuid);
}

/** Drops undefined members so model objects compare and print exactly. */
export function defined<T extends object>(obj: T): T {
  for (const key of Object.keys(obj) as (keyof T)[]) {
    if (obj[key] === undefined) delete obj[key];
  }
  return obj;
}

/** `<address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/>`; absent parts are 0, as in libvirt. */
export function pciAddress(el: XmlElement): PciAddress {
  return {
    domain: cUnsigned(el, "domain", 0xffffffff) ?? 0,
    bus: cUnsigned(el, "bus", 0xff) ?? 0,
    slot: cUnsigned(el, "slot", 0x1f) ?? 0,
    function: cUnsigned(el, "function", 0x7) ?? 0,
  };
}
