import type { CommandModule } from "yargs";

/** `virt-aa-hook hook`: placeholder until its stage lands. */
export function hookCommand(setExit: (code: number) => void): CommandModule {
  return {
    command: "hook",
    describe: false,
    handler: () => {
      process.stderr.write("virt-aa-hook: error: hook is not implemented yet\n");
      setExit(2);
    },
  };
}
