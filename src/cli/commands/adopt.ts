import type { CommandModule } from "yargs";

/** `virt-aa-hook adopt`: placeholder until its stage lands. */
export function adoptCommand(setExit: (code: number) => void): CommandModule {
  return {
    command: "adopt",
    describe: false,
    handler: () => {
      process.stderr.write("virt-aa-hook: error: adopt is not implemented yet\n");
      setExit(2);
    },
  };
}
