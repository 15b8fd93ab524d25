// Types for manpage.mjs (imported by test/package/).
export interface HelpRun {
  status: number | null;
  stdout: string;
  stderr: string;
}
export function helpOf(node: string, bundle: string, args: string[], extraEnv?: Record<string, string>): HelpRun;
export function commandsOf(topHelp: string): string[];
export function roffText(text: string): string;
export function unroff(text: string): string;
export function manPage(opts: { node: string; bundle: string; version: string; date: string }): {
  page: string;
  sections: { command: string; help: string }[];
  skipped: { command: string; why: string }[];
};
