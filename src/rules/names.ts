import { PathError } from "../errors.js";
import { isFileNameComponent } from "../names.js";

/**
 * A name from the XML that libvirt pastes into a file name (`/dev/shm/<name>`,
 * `<name>-swtpm.log`, the TPM device's sysfs class entry) must stay one path component, or a
 * name like `../../etc/x` would point anywhere.
 */
export function requireFileNameComponent(name: string, what: string, element?: string): string {
  if (!isFileNameComponent(name)) {
    throw new PathError(name, `${element === undefined ? "" : `${element}: `}${what} must be a single file name component`);
  }
  return name;
}
