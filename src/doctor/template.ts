/**
 * Does the template (config `template`, TEMPLATE.qemu) compile on its own? The per-guest profile is
 * made from it, so a syntax error in it, or in an abstraction or local override it includes, fails
 * every new guest's start; the parser then names our generated profile or even the `.files` (a rule
 * without its comma on the template's last line runs into the include we add). This compiles the
 * template alone, with an empty `.files`, and names the file the admin has to fix and its line.
 *
 * Used by `doctor` and, only once a new guest's profile failed to compile, by the hook
 * (hook/sync.ts) to say whether the template is the cause.
 */
import fs from "node:fs";
import path from "node:path";
import { parserFailed, parserMessage, runParser } from "../apparmor/runner.js";
import type { Layout } from "../layout.js";
import { filesIncludeLine, renderProfile } from "../render/profile.js";

/** A UUID no guest has (version 4, all zero): the name of the profile compiled from the template. */
const PROBE_UUID = "00000000-0000-4000-8000-000000000000";

export interface TemplateProblem {
  /** The file to fix (host path): the template, or the abstraction / override the parser names. */
  file: string;
  /** Line in that file, when the parser says. */
  line?: number;
  /** The parser's message, with our scratch files named as the admin knows them. */
  message: string;
  /**
   * A syntax or rule error the parser located in a file it read (not a parser that could not run
   * or crashed, and not an include it could not open: a missing file of the include base, such as
   * tunables/global, is no fault of the template's line that names it).
   */
  located: boolean;
}

export interface TemplateCheckOptions {
  /** Features file for `-M` (real path), if any. */
  features?: string;
  /** A real directory to make the scratch dir in (dot-named, removed afterwards). */
  scratchIn: string;
  timeoutMs?: number;
}

/** Compile the layout's template alone; undefined when it compiles. */
export async function templateProblem(layout: Layout, opts: TemplateCheckOptions): Promise<TemplateProblem | undefined> {
  const template = layout.template;
  let text: string;
  try {
    text = fs.readFileSync(layout.host(template), "utf8");
  } catch (err) {
    return { file: template, message: `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, located: false };
  }
  const name = layout.profileName(PROBE_UUID);
  const include = `libvirt/${name}.files`;
  let profile: string;
  try {
    profile = renderProfile(text, name, include);
  } catch (err) {
    return { file: template, message: (err as Error).message, located: false };
  }
  const scratch = fs.mkdtempSync(path.join(opts.scratchIn, ".virt-aa-hook-template-"));
  try {
    fs.mkdirSync(path.join(scratch, "libvirt"));
    const scratchProfile = path.join(scratch, "libvirt", name);
    fs.writeFileSync(scratchProfile, profile);
    fs.writeFileSync(`${scratchProfile}.files`, "");
    const args = ["-QK", ...(opts.features ? ["-M", opts.features] : []), "-I", scratch, "--base", layout.host(layout.apparmorDir), scratchProfile];
    const r = await runParser(layout.parser, args, { cwd: scratch, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
    if (!parserFailed(r)) return undefined;
    const includeLine = profile.split("\n").findIndex((l) => l.trim() === filesIncludeLine(include)) + 1;
    const problem = mapMessage(parserMessage(r), { scratchProfile, template, includeLine, hostOf: (real) => hostPath(layout, real) });
    const located = r.failure === undefined && problem.line !== undefined && !/Could not open '/.test(problem.message);
    return { ...problem, located };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** One line for messages: "<file> line N: <message>". */
export function templateProblemText(p: TemplateProblem): string {
  return `${p.file}${p.line !== undefined ? ` line ${p.line}` : ""}: ${p.message}`;
}

/**
 * The parser says "AppArmor parser error for <compiled> in profile <file> at line N: <what>":
 * <file> is the scratch profile (then it is the template, its line before our include line as it
 * is, after it one less), the empty scratch `.files` (the template's last rule ran into it: the
 * line of the template's closing brace), or an include the parser names by its real path.
 */
function mapMessage(
  message: string,
  m: { scratchProfile: string; template: string; includeLine: number; hostOf: (real: string) => string },
): Omit<TemplateProblem, "located"> {
  const templateLine = (n: number) => (n < m.includeLine ? n : Math.max(1, n - 1));
  const where = /in profile (\S+) at line (\d+)/.exec(message);
  let file = m.template;
  let line: number | undefined;
  if (where) {
    const n = Number(where[2]);
    if (where[1] === m.scratchProfile) line = templateLine(n);
    else if (where[1] === `${m.scratchProfile}.files`) line = m.includeLine;
    else {
      file = m.hostOf(where[1]!);
      line = n;
    }
  }
  const shown = message
    .replace(/in profile (\S+) at line (\d+)/g, (_all, f: string, n: string) =>
      f === m.scratchProfile ? `in ${m.template} at line ${templateLine(Number(n))}` : f === `${m.scratchProfile}.files` ? `at the end of the profile block in ${m.template} (line ${m.includeLine}, where virt-aa-hook adds its include)` : `in ${m.hostOf(f)} at line ${n}`,
    )
    .split(`${m.scratchProfile}.files`).join("the .files include")
    .split(m.scratchProfile).join(m.template);
  return { file, ...(line !== undefined ? { line } : {}), message: shown };
}

/** A real path under the root, as the host names it. */
function hostPath(layout: Layout, real: string): string {
  if (layout.isRealRoot || !real.startsWith(`${layout.root}/`)) return real;
  return real.slice(layout.root.length);
}
