import type { CommandModule } from "yargs";

/** `virt-aa-hook explain`: placeholder until its stage lands. */
export function explainCommand(setExit: (code: number) => void): CommandModule {
  return {
    command: "explain",
    describe: false,
    handler: () => {
      process.stderr.write("virt-aa-hook: error: explain is not implemented yet\n");
      setExit(2);
    },
  };
}
