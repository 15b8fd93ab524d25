import type { CommandModule } from "yargs";

/**
 * `virt-aa-hook completion`: yargs' own completion script (its template, not ours). The script asks
 * `virt-aa-hook --get-yargs-completions WORDS...` for the candidates, so it completes whatever
 * commands and options the CLI has.
 */
export function completionCommand(show: () => void): CommandModule<{ root: string }, { root: string }> {
  return {
    command: "completion",
    describe: "Print the bash completion script for virt-aa-hook",
    builder: (y) => y,
    handler: () => show(),
  };
}
