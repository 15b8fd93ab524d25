/** Who the guest is: name, UUID, runtime id and virtualisation type, checked strictly. */
import type { XmlElement } from "./tree.js";
import { PathError } from "../errors.js";
import { MAX_NAME_CHARS } from "./limits.js";
import { checkToken, codePoint, parseDecimal, parseUuid } from "./values.js";
import { InvalidValue } from "./fault.js";

/** The name goes into file names and profile rules: one line, one path component. */
export function readName(domain: XmlElement): string {
  const el = domain.one("name");
  const name = el.text();
  if (name === "") el.fail("empty domain name");
  if (name.length > MAX_NAME_CHARS) el.fail(`domain name is ${name.length} characters, more than ${MAX_NAME_CHARS}`);
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(name);
  if (control) el.fail(`domain name contains control character ${codePoint(control[0])}`);
  if (name.includes("/")) el.fail('domain name contains "/"');
  return name;
}

/** Exactly one `<uuid>` (a second one could make our profile name disagree with libvirt's). */
export function readUuid(domain: XmlElement): string {
  const el = domain.one("uuid");
  const raw = el.text();
  try {
    return parseUuid(raw);
  } catch (err) {
    if (err instanceof InvalidValue) throw new PathError(el.where, err.reason);
    throw err;
  }
}

/** `<domain id=...>`: present while the guest runs; "-1" is libvirt's "not running". */
export function readId(domain: XmlElement): number | undefined {
  const raw = domain.attr("id");
  if (raw === undefined || raw === "-1") return undefined;
  return domain.convert('attribute "id"', raw, (v) => parseDecimal(v, 0x7fffffff));
}

/**
 * `<domain type=...>`. libvirt itself requires it and always writes it; when hand-written XML
 * (explain, tests) omits it we assume "qemu", the choice that grants least (no kvm-only devices
 * such as /dev/vhost-net).
 */
export function readType(domain: XmlElement): string {
  const raw = domain.attr("type");
  return raw === undefined ? "qemu" : domain.convert('attribute "type"', raw, checkToken);
}
