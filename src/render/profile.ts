import { HostError } from "../errors.js";
import { isProfileName } from "../names.js";

/** `libvirt-<lower-case canonical uuid>`, the only profile name we ever write. */

/** The placeholder libvirt's TEMPLATE.qemu uses for the profile name. */
export const TEMPLATE_PLACEHOLDER = "LIBVIRT_TEMPLATE";

// A relative include name such as `libvirt/libvirt-<uuid>.files`: no `>` or line break that could
// end the directive, no `..` that could leave the include directory.
const INCLUDE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;

/**
 * The per-guest profile made from libvirt's `TEMPLATE.qemu`: the profile name replaces
 * `LIBVIRT_TEMPLATE` in the `profile LIBVIRT_TEMPLATE ... {` header, and
 * `  include if exists <filesInclude>` becomes the last line of that profile's block. Everything else in
 * the template (comments, tunables, flags, other rules) is kept byte for byte.
 *
 * `filesInclude` is the include name relative to the parser's include directory, normally
 * `libvirt/<profileName>.files`.
 *
 * Throws Error for an invalid profile name or include name (caller bugs) and HostError when the
 * template has no `profile LIBVIRT_TEMPLATE` header or no complete `{ ... }` block after it.
 */
export function renderProfile(template: string, profileName: string, filesInclude: string): string {
  if (!isProfileName(profileName)) {
    throw new Error(`invalid profile name ${JSON.stringify(profileName)}: expected libvirt-<lower-case uuid>`);
  }
  if (!INCLUDE_NAME.test(filesInclude) || filesInclude.split("/").includes("..")) {
    throw new Error(`invalid include name ${JSON.stringify(filesInclude)}`);
  }

  const code = codeMask(template);
  const header = findHeader(template, code);
  if (header === undefined) {
    throw new HostError(`AppArmor template has no 'profile ${TEMPLATE_PLACEHOLDER}' header`);
  }
  const close = findBlockEnd(template, code, header.end);
  if (close === undefined) {
    throw new HostError(`AppArmor template: profile ${TEMPLATE_PLACEHOLDER} has no complete { ... } block`);
  }

  const include = `  ${filesIncludeLine(filesInclude)}\n`;
  const lineStart = template.lastIndexOf("\n", close - 1) + 1;
  const braceOnOwnLine = template.slice(lineStart, close).trim() === "";
  // Keep the closing brace where it was; put the include on the line before it.
  const insertAt = braceOnOwnLine ? lineStart : close;
  const inserted = braceOnOwnLine ? include : `\n${include}`;

  return (
    template.slice(0, header.nameStart) +
    profileName +
    template.slice(header.nameStart + TEMPLATE_PLACEHOLDER.length, insertAt) +
    inserted +
    template.slice(insertAt)
  );
}

/**
 * The profile's include of its `.files`: `include if exists <...>` (apparmor_parser >= 3.0; checked
 * with Debian 12's 3.0.8), so a profile kept after release removed the `.files` (hook/release.ts)
 * still compiles and loads, and doctor raises no false alarm for it. The `<...>` form, not a quoted
 * path: it is searched along the include path, so the hook's staging dir (`-I`) is found first.
 * Profiles of older versions have the plain `#include <...>` (doctor: legacyFilesInclude).
 */
export function filesIncludeLine(filesInclude: string): string {
  return `include if exists <${filesInclude}>`;
}

/** Does `profile` include `filesInclude` without `if exists` (written by an older version)? */
export function legacyFilesInclude(profile: string, filesInclude: string): boolean {
  const target = `<${filesInclude}>`;
  for (let at = profile.indexOf(target); at >= 0; at = profile.indexOf(target, at + 1)) {
    // What precedes it on its line: exactly the directive (`# include` with a blank is a comment).
    const directive = profile.slice(profile.lastIndexOf("\n", at) + 1, at).trim();
    if (directive === "#include" || directive === "include") return true;
  }
  return false;
}

/**
 * The flags of profile `profileName` in `profile` (`profile NAME flags=(attach_disconnected, complain) {`):
 * `complain` there makes the kernel only log what the profile denies, whatever mode we load it in.
 */
export function profileFlags(profile: string, profileName: string): string[] {
  const code = codeMask(profile);
  const header = new RegExp(`(?<![^\\s{}])${profileName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![^\\s{])([^{]*)\\{`, "g");
  for (const m of profile.matchAll(header)) {
    if (!code[m.index]) continue;
    const flags = /(?:^|\s)flags\s*=\s*\(([^)]*)\)/.exec(m[1]!);
    return flags ? flags[1]!.split(/[\s,]+/).filter(Boolean) : [];
  }
  return [];
}

/** Where `profile LIBVIRT_TEMPLATE` appears as code (not in a comment or a quoted string). */
function findHeader(text: string, code: boolean[]): { nameStart: number; end: number } | undefined {
  // `profile` must start a word and the placeholder must end one (a brace or blank follows).
  const header = new RegExp(`(?<![^\\s{}])profile[ \\t]+${TEMPLATE_PLACEHOLDER}(?![^\\s{])`, "g");
  for (const m of text.matchAll(header)) {
    if (!code[m.index]) continue;
    const nameStart = m.index + m[0].length - TEMPLATE_PLACEHOLDER.length;
    return { nameStart, end: nameStart + TEMPLATE_PLACEHOLDER.length };
  }
  return undefined;
}

/** Index of the `}` that closes the first block opened after `from`, counting nested braces. */
function findBlockEnd(text: string, code: boolean[], from: number): number | undefined {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    if (!code[i]) continue;
    if (text[i] === "{") depth++;
    else if (text[i] === "}") {
      if (depth === 0) return undefined; // a `}` before any `{`: not a block of ours
      depth--;
      if (depth === 0) return i;
    }
  }
  return undefined;
}

/**
 * For each index: is this character profile code? Comments (`#` to end of line; `#include` lines
 * hold no braces, so treating them as comments is harmless) and quoted strings (with `\` escapes)
 * are not, so braces and words inside them are ignored.
 */
function codeMask(text: string): boolean[] {
  const mask = new Array<boolean>(text.length).fill(false);
  let state: "code" | "comment" | "quoted" = "code";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (state === "comment") {
      if (c === "\n") state = "code";
    } else if (state === "quoted") {
      if (c === "\\") i++;
      else if (c === '"') state = "code";
    } else if (c === "#") {
      state = "comment";
    } else if (c === '"') {
      state = "quoted";
    } else {
      mask[i] = true;
    }
  }
  return mask;
}
