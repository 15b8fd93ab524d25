import type { CommandModule } from "yargs";

/**
 * `virt-aa-hook completion`: yargs' own completion script (its template, not ours). The script asks
 * `virt-aa-hook --get-yargs-completions WORDS...` for the candidates, so it completes whatever
 * commands and options the CLI has.
 */
export function completionCommand(show: () => void): CommandModule<{ root: string }, { root: string }> {
  return {
    command: "completion",
    describe:
      "Print a bash completion script for virt-aa-hook (yargs' own; it asks virt-aa-hook for the words). It is zsh's or fish's when $SHELL names zsh or fish: run it as SHELL=/bin/bash virt-aa-hook completion for bash",
    builder: (y) => y,
    handler: () => show(),
  };
}
