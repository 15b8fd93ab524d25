import type { CommandModule } from "yargs";

/** `virt-aa-hook doctor`: placeholder until its stage lands. */
export function doctorCommand(setExit: (code: number) => void): CommandModule {
  return {
    command: "doctor",
    describe: false,
    handler: () => {
      process.stderr.write("virt-aa-hook: error: doctor is not implemented yet\n");
      setExit(2);
    },
  };
}
