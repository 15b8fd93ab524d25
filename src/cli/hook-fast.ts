/** `virt-aa-hook hook NAME OP SUBOP EXTRA` without yargs. Owned by the hook stage (issue 3). */
export async function runHookCommand(_args: string[]): Promise<number> {
  process.stderr.write("virt-aa-hook: error: -: -: hook not implemented yet\n");
  return 1;
}
