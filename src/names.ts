/**
 * The two name checks every stage shares: a guest UUID, and a name used as one file-name
 * component. Pure, no imports: any module may use them whatever its stage.
 */

/** libvirt's canonical form of a UUID, lower case (8-4-4-4-12): the form the profile name `libvirt-<uuid>` uses. */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Either form libvirt's schema accepts (32 hex digits, or 8-4-4-4-12), in either case. */
const UUID_FORMS = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;

export function isCanonicalUuid(value: string): boolean {
  return CANONICAL_UUID.test(value);
}

/** A UUID in a form libvirt accepts, as the canonical lower-case form; undefined for anything else. */
export function canonicalUuid(value: string): string | undefined {
  if (!UUID_FORMS.test(value)) return undefined;
  const hex = value.replace(/-/g, "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A guest profile's name: `libvirt-` and a canonical UUID. */
export function isProfileName(name: string): boolean {
  return name.startsWith("libvirt-") && CANONICAL_UUID.test(name.slice("libvirt-".length));
}

/**
 * A name that stays one path component when pasted into a path (`/dev/shm/<name>`,
 * `<pool>.xml`, `<name>.pid`): not empty, not "." or "..", no "/" and no NUL.
 */
export function isFileNameComponent(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0");
}
