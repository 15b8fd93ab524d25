import { oneLine } from "../errors.js";

/**
 * Text from the domain XML (guest name, rule source) made safe to place after `# ` in profile
 * text. A profile comment runs to the end of the line, so the only way out of it is a line break:
 * every control character (including CR and LF) is shown as `\xNN` instead, and the comment can
 * never end early and let the rest of the text be parsed as rules.
 */
export function commentText(text: string): string {
  return oneLine(text);
}
