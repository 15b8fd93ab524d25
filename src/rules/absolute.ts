import { PathError } from "../errors.js";

/**
 * A host path as written in the XML, checked to be absolute. QEMU would resolve a relative path
 * against its own working directory, which no profile can predict, so such input is rejected
 * rather than guessed at. An empty string is not absolute either.
 *
 * `element` names what the path belongs to ("disk vda", "loader", "serial 0"), so the refusal says
 * which element to fix.
 */
export function absolute(path: string, element: string): string {
  if (!path.startsWith("/")) throw new PathError(path, `${element}: path is not absolute`);
  return path;
}
