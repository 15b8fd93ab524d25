/** Strict syntax checks for the scalar values in domain XML. Pure; failures throw InvalidValue. */
import { InvalidValue, preview } from "./fault.js";
import { canonicalUuid } from "../names.js";

/**
 * The two forms libvirt's schema accepts (32 hex digits, or 8-4-4-4-12), surrounding whitespace
 * tolerated as libvirt does; returns the lower-case 8-4-4-4-12 form the profile name uses.
 */
export function parseUuid(raw: string): string {
  const uuid = canonicalUuid(raw.trim());
  if (uuid === undefined) throw new InvalidValue(`invalid UUID "${preview(raw)}"`);
  return uuid;
}

export function parseYesNo(raw: string): boolean {
  if (raw === "yes") return true;
  if (raw === "no") return false;
  throw new InvalidValue(`invalid value "${preview(raw)}" (expected yes or no)`);
}

/** Plain decimal, no sign, no leading zeros (the domain id). */
export function parseDecimal(raw: string, max: number): number {
  if (!/^(?:0|[1-9][0-9]{0,15})$/.test(raw)) throw new InvalidValue(`invalid number "${preview(raw)}"`);
  return inRange(raw, Number(raw), max);
}

/**
 * An unsigned integer as C's strtoul(..., 0) reads it, which is how libvirt parses device
 * addresses: "0x1f" hex, "017" octal, "31" decimal; the whole string must be consumed, so
 * "0x1g" or "08" are errors exactly as they are for libvirt.
 */
export function parseCUnsigned(raw: string, max: number): number {
  let value: number;
  if (/^0[xX][0-9a-fA-F]{1,16}$/.test(raw)) value = parseInt(raw.slice(2), 16);
  else if (/^0[0-7]{0,21}$/.test(raw)) value = raw.length === 1 ? 0 : parseInt(raw.slice(1), 8);
  else if (/^[1-9][0-9]{0,19}$/.test(raw)) value = Number(raw);
  else throw new InvalidValue(`invalid number "${preview(raw)}"`);
  return inRange(raw, value, max);
}

function inRange(raw: string, value: number, max: number): number {
  if (value > max) throw new InvalidValue(`number "${preview(raw)}" is out of range (at most ${max})`);
  return value;
}

/** An enumeration-like value (device type, model, driver name): short, no spaces or punctuation. */
export function checkToken(raw: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/.test(raw)) throw new InvalidValue(`invalid value "${preview(raw)}"`);
  return raw;
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Free text that ends up in rule sources or file names: no control characters. */
export function checkLabel(raw: string): string {
  const control = CONTROL.exec(raw);
  if (control) throw new InvalidValue(`contains control character ${codePoint(control[0])}`);
  return raw;
}

export function codePoint(ch: string): string {
  return `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}
