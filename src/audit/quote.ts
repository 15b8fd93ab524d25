/**
 * Printing a command or an XML snippet that holds a guest-chosen path (review19 F3). The path in a
 * denial is what a guest's QEMU tried to open: the kernel writes it verbatim in quotes whenever it
 * has no blank, quote, control or non-ASCII byte (linux kernel/audit.c,
 * audit_string_contains_control), so `; | & $ ( ) \` #` reach us as they are. An admin copies a
 * printed command into a root shell: it must never run anything but the command.
 */

/**
 * Bytes of a path we print in a ready-to-run command: letters, digits and `_ . / + , : @ % = -`.
 * Everything else (shell metacharacters, AppArmor glob characters `* ? [ ] { } ^`, blanks, quotes,
 * control and non-ASCII bytes) makes us print no command at all (see `commandRefusal`).
 */
const COMMAND_SAFE = /^[A-Za-z0-9_./+,:@%=-]+$/;

/** Whether `text` (already what is printed) may appear as an argument of a printed command. */
export function commandSafe(text: string): boolean {
  return COMMAND_SAFE.test(text);
}

/** One shell word: single quotes, a `'` inside as `'\''`. Nothing between single quotes is interpreted by a POSIX shell. */
export function shellWord(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** Text inside an XML attribute value (either quote): `& < > " '` as entities. */
export function xmlAttr(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** Said instead of a command for a path that `commandSafe` refuses. */
export const NO_COMMAND_FOR_PATH =
  "no command printed: the path holds characters a shell or AppArmor would interpret, or bytes shown escaped; a QEMU that asks for such a path is not doing what an XML element explains";
