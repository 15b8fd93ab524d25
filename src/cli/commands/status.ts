import type { CommandModule } from "yargs";

/** `virt-aa-hook status`: placeholder until its stage lands. */
export function statusCommand(setExit: (code: number) => void): CommandModule {
  return {
    command: "status",
    describe: false,
    handler: () => {
      process.stderr.write("virt-aa-hook: error: status is not implemented yet\n");
      setExit(2);
    },
  };
}
